//! Node logs, in Fabric's log spec syntax: `WEFT_LOGGING_SPEC` (or Fabric's
//! `FABRIC_LOGGING_SPEC`) is `[<logger>[,<logger>…]=]<level>[:…]`, e.g.
//! `info:weft_ledger,weft_peer::deliver=debug`; a logger is a module path
//! prefix. Lines carry a UTC timestamp, the level and the module;
//! `WEFT_LOG_FORMAT=json` writes one JSON object per line instead.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::Registry;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// The spec when none is given: weft at INFO, Raft's internals at WARN.
pub const DEFAULT_SPEC: &str = "info:openraft=warn";

fn level(name: &str) -> Result<LevelFilter, String> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "dpanic" | "panic" | "fatal" => LevelFilter::ERROR,
        "trace" => LevelFilter::TRACE,
        "off" | "none" => LevelFilter::OFF,
        other => {
            return Err(format!(
                "unknown log level {other:?} (debug, info, warning, error, fatal)"
            ));
        }
    })
}

/// Parses a Fabric-style log spec.
pub fn parse_spec(spec: &str) -> Result<Targets, String> {
    let mut targets = Targets::new().with_default(LevelFilter::INFO);
    for term in spec.split(':').filter(|t| !t.trim().is_empty()) {
        match term.split_once('=') {
            None => targets = targets.with_default(level(term)?),
            Some((loggers, name)) => {
                let level = level(name)?;
                for logger in loggers.split(',').map(str::trim) {
                    if logger.is_empty() {
                        return Err(format!("log spec term {term:?} names an empty logger"));
                    }
                    targets = targets.with_target(logger.replace('.', "::"), level);
                }
            }
        }
    }
    Ok(targets)
}

/// The installed filter and the spec it came from, changeable at run time
/// (the operations service's `/logspec`).
struct Installed {
    handle: reload::Handle<Targets, Registry>,
    spec: Mutex<String>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Sends the node's logs to standard error, filtered by the environment's
/// spec (or [`DEFAULT_SPEC`]). A bad spec is an error naming the problem.
pub fn init() -> Result<(), String> {
    let spec = std::env::var("WEFT_LOGGING_SPEC")
        .or_else(|_| std::env::var("FABRIC_LOGGING_SPEC"))
        .unwrap_or_else(|_| DEFAULT_SPEC.to_owned());
    let filter = parse_spec(&spec).map_err(|e| format!("WEFT_LOGGING_SPEC {spec:?}: {e}"))?;
    let json = std::env::var("WEFT_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    installed.map_err(|e| format!("installing the logger: {e}"))?;
    let _ = INSTALLED.set(Installed {
        handle,
        spec: Mutex::new(spec),
    });
    Ok(())
}

/// The log spec in force, if [`init`] installed the logger.
pub fn spec() -> Option<String> {
    INSTALLED
        .get()
        .map(|i| i.spec.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Replaces the log spec at run time; a bad spec changes nothing.
pub fn set_spec(spec: &str) -> Result<(), String> {
    let filter = parse_spec(spec)?;
    let installed = INSTALLED
        .get()
        .ok_or("the node's logger is not installed")?;
    installed
        .handle
        .reload(filter)
        .map_err(|e| format!("changing the log spec: {e}"))?;
    *installed.spec.lock().unwrap_or_else(|p| p.into_inner()) = spec.to_owned();
    tracing::info!("log spec changed to {spec:?}");
    Ok(())
}

/// A refusal call site may log this many lines per [`REFUSAL_WINDOW_S`]…
pub const REFUSALS_PER_WINDOW: u32 = 10;
/// …seconds; the rest are counted and reported with the next line.
pub const REFUSAL_WINDOW_S: u64 = 10;

/// Logs refused network input (a bad signature, a stale request, a stalled
/// connection) at WARN, at most [`REFUSALS_PER_WINDOW`] lines per call site
/// every [`REFUSAL_WINDOW_S`] seconds, so a hostile client cannot grow the
/// node's log without bound; the next line logged says how many were not.
#[macro_export]
macro_rules! refusal {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::logging::RateLimit = $crate::logging::RateLimit::new();
        match LIMIT.admit($crate::logging::unix_seconds()) {
            Some(0) => ::tracing::warn!($($arg)+),
            Some(suppressed) => ::tracing::warn!(
                "{} ({suppressed} more like it not logged)",
                format_args!($($arg)+)
            ),
            None => {}
        }
    }};
}

/// The seconds since the Unix epoch, for [`refusal!`].
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One call site's budget of log lines (see [`refusal!`]).
#[derive(Debug)]
pub struct RateLimit {
    window: AtomicU64,
    logged: AtomicU32,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub const fn new() -> Self {
        RateLimit {
            window: AtomicU64::new(0),
            logged: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log this line, saying `n` were left out since the last
    /// one; `None`: leave it out.
    pub fn admit(&self, now_s: u64) -> Option<u64> {
        let window = now_s / REFUSAL_WINDOW_S;
        let current = self.window.load(Ordering::Relaxed);
        if current != window
            && self
                .window
                .compare_exchange(current, window, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.logged.store(0, Ordering::Relaxed);
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) < REFUSALS_PER_WINDOW {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn refusals_beyond_the_budget_are_counted_not_logged() {
        let limit = super::RateLimit::new();
        let start = 1_000 * super::REFUSAL_WINDOW_S;
        for _ in 0..super::REFUSALS_PER_WINDOW {
            assert_eq!(limit.admit(start), Some(0));
        }
        for _ in 0..25 {
            assert_eq!(limit.admit(start + 1), None);
        }
        // The next window logs again and reports what was left out.
        assert_eq!(limit.admit(start + super::REFUSAL_WINDOW_S), Some(25));
        assert_eq!(limit.admit(start + super::REFUSAL_WINDOW_S), Some(0));
    }

    use tracing::Level;

    use super::*;

    #[test]
    fn fabric_specs_set_default_and_per_logger_levels() {
        let targets = parse_spec("warning:weft_ledger,weft_peer.deliver=debug").expect("spec");
        assert!(targets.would_enable("weft_ledger::commit", &Level::DEBUG));
        assert!(targets.would_enable("weft_peer::deliver", &Level::DEBUG));
        assert!(!targets.would_enable("weft_peer::gateway", &Level::INFO));
        assert!(targets.would_enable("weft_peer::gateway", &Level::WARN));
        let default = parse_spec(DEFAULT_SPEC).expect("default");
        assert!(default.would_enable("weft_orderer::channel", &Level::INFO));
        assert!(!default.would_enable("openraft::core", &Level::INFO));
        assert!(
            parse_spec("")
                .expect("empty")
                .would_enable("x", &Level::INFO)
        );
    }

    #[test]
    fn bad_specs_are_named() {
        assert!(parse_spec("loud").unwrap_err().contains("\"loud\""));
        assert!(parse_spec("=debug").unwrap_err().contains("empty logger"));
    }
}
