//! Process limits a long-running server needs.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Where the hard limit is unlimited: Linux's default `fs.nr_open`, the
/// most a process may ask for without a sysctl.
const UNLIMITED_OPEN_FILES: u64 = 1 << 20;

/// Raises this process's soft limit on open files to its hard limit, as Go
/// programs (Fabric's nodes among them) do when they start. A server holding
/// many connections and files would otherwise stop at the soft limit (often
/// 1,024) with "Too many open files", however high the hard limit is.
/// Logs and returns the soft limit before and after when it changed; logs
/// a warning when the system refused.
pub fn raise_open_files() -> Option<(u64, u64)> {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(UNLIMITED_OPEN_FILES);
    let soft = limit.current?;
    if soft >= hard {
        return None;
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!("open files limit stays at {soft}: raising it to {hard} failed: {error}");
        return None;
    }
    tracing::info!("open files limit raised from {soft} to {hard} (the hard limit)");
    Some((soft, hard))
}
