//! Keeps every node of a network running: starts each as a `weft orderer` or
//! `weft peer` process (its own process group, output appended to
//! `nodes/<node>/node.log`), restarts one that exits with a growing back-off,
//! and stops them all (SIGTERM, then SIGKILL after a grace period) when asked.
//!
//! Pid files (`supervisor.pid`, `nodes/<node>/pid`) let `weft down`,
//! `weft status` and a later supervisor find processes; a node still running
//! from an earlier supervisor (killed without stopping its nodes) is adopted,
//! not started twice.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::NetworkError;
use crate::dir::{NetworkDir, write_atomic};
use crate::nodes::{Node, nodes};

const POLL: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process up this long has its back-off reset.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// When a supervised process may start again: after each exit or failed
/// start a back-off from 0.5 s doubling to 30 s, reset once it has run
/// for a minute.
#[derive(Debug)]
pub(crate) struct Restarts {
    started: Instant,
    backoff: Duration,
    next_start: Instant,
}

impl Restarts {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Restarts {
            started: now,
            backoff: BACKOFF_MIN,
            next_start: now,
        }
    }

    /// It was started now.
    pub(crate) fn started(&mut self) {
        self.started = Instant::now();
    }

    /// It still runs: a long run resets the back-off.
    pub(crate) fn running(&mut self) {
        if self.started.elapsed() > HEALTHY_AFTER {
            self.backoff = BACKOFF_MIN;
        }
    }

    /// It exited or could not start: returns the wait before the next start.
    pub(crate) fn failed(&mut self) -> Duration {
        let wait = self.backoff;
        self.next_start = Instant::now() + wait;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        wait
    }

    /// Start it at the next look, without waiting.
    pub(crate) fn now(&mut self) {
        self.next_start = Instant::now();
    }

    /// Whether it may be started.
    pub(crate) fn due(&self) -> bool {
        Instant::now() >= self.next_start
    }

    /// Takes the outcome of starting process `name`: the child, if it started.
    pub(crate) fn start_outcome(
        &mut self,
        started: Result<Child, NetworkError>,
        name: &str,
        log: &mut dyn FnMut(&str),
    ) -> Option<Child> {
        match started {
            Ok(child) => {
                log(&format!("{name}: started (pid {})", child.id()));
                self.started();
                Some(child)
            }
            Err(error) => {
                log(&format!("{name}: cannot start: {error}"));
                self.failed();
                None
            }
        }
    }

    /// Looks at `child` (process `name`, logging to `log_file`): true while
    /// it runs; once it has exited, says so and when it starts again.
    pub(crate) fn still_running(
        &mut self,
        child: &mut Child,
        name: &str,
        log_file: &Path,
        log: &mut dyn FnMut(&str),
    ) -> bool {
        match child.try_wait() {
            Ok(None) => {
                self.running();
                true
            }
            Ok(Some(status)) => {
                let wait = self.failed();
                log(&format!(
                    "{name}: exited ({status}); restarting in {:.1}s (see {})",
                    wait.as_secs_f64(),
                    log_file.display()
                ));
                false
            }
            Err(error) => {
                self.failed();
                log(&format!("{name}: cannot wait for the process: {error}"));
                false
            }
        }
    }
}

fn pid_of(raw: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(raw).ok()?)
}

/// Whether process `pid` exists and its command line contains `marker`
/// (guards against a recycled pid).
pub fn process_matches(pid: u32, marker: &str) -> bool {
    let Some(process) = pid_of(pid) else {
        return false;
    };
    if rustix::process::test_kill_process(process).is_err() {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(marker)
        })
        .unwrap_or(false)
}

pub(crate) fn signal(pid: u32, signal: Signal) {
    if let Some(process) = pid_of(pid) {
        let _ = rustix::process::kill_process(process, signal);
    }
}

pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The running supervisor's pid, if any.
pub fn running_supervisor(dir: &NetworkDir) -> Option<u32> {
    read_pid(&dir.supervisor_pid()).filter(|&pid| process_matches(pid, "supervise"))
}

/// The pid of `node` if it is running.
pub fn running_node(dir: &NetworkDir, node: &Node) -> Option<u32> {
    let config = dir.node_config(&node.name);
    read_pid(&dir.node_pid(&node.name))
        .filter(|&pid| process_matches(pid, &config.display().to_string()))
}

struct Process {
    node: Node,
    child: Option<Child>,
    /// Running from an earlier supervisor.
    adopted: Option<u32>,
    restarts: Restarts,
}

/// Runs the supervisor loop until `stop` turns true, then stops every node.
pub fn supervise(
    dir: &NetworkDir,
    weft: &Path,
    stop: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    let (spec, _) = dir.load_spec()?;
    let mut processes: Vec<Process> = nodes(&spec)
        .into_iter()
        .map(|node| Process {
            adopted: running_node(dir, &node),
            node,
            child: None,
            restarts: Restarts::new(),
        })
        .collect();
    for process in &processes {
        if let Some(pid) = process.adopted {
            log(&format!(
                "{}: already running (pid {pid}), adopted",
                process.node.name
            ));
        }
    }
    while !stop.load(Ordering::SeqCst) {
        for process in &mut processes {
            check(dir, weft, process, log);
        }
        std::thread::sleep(POLL);
    }
    log("stopping nodes");
    stop_all(dir, &mut processes, log);
    Ok(())
}

fn check(dir: &NetworkDir, weft: &Path, process: &mut Process, log: &mut dyn FnMut(&str)) {
    let name = process.node.name.clone();
    if let Some(pid) = process.adopted {
        if process_matches(pid, &dir.node_config(&name).display().to_string()) {
            return;
        }
        log(&format!("{name}: adopted process {pid} is gone"));
        process.adopted = None;
        process.restarts.now();
    }
    if let Some(child) = &mut process.child {
        if process
            .restarts
            .still_running(child, &name, &dir.node_log(&name), log)
        {
            return;
        }
        process.child = None;
        let _ = std::fs::remove_file(dir.node_pid(&name));
    }
    if !process.restarts.due() {
        return;
    }
    let started = start(dir, weft, &process.node);
    process.child = process.restarts.start_outcome(started, &name, log);
}

/// Starts `weft <args>` in `cwd` with its output appended to `log`, in its
/// own process group: a Ctrl-C meant for the caller does not reach it.
fn spawn_detached(
    weft: &Path,
    args: &[&std::ffi::OsStr],
    log: &Path,
    cwd: &Path,
) -> Result<Child, NetworkError> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| NetworkError::io(log, e))?;
    let err = out.try_clone().map_err(|e| NetworkError::io(log, e))?;
    Command::new(weft)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| NetworkError::io(weft, e))
}

fn start(dir: &NetworkDir, weft: &Path, node: &Node) -> Result<Child, NetworkError> {
    let config = dir.node_config(&node.name);
    let child = spawn_detached(
        weft,
        &[
            node.kind().as_ref(),
            "start".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        &dir.node_log(&node.name),
        &dir.node_dir(&node.name),
    )?;
    write_atomic(&dir.node_pid(&node.name), child.id().to_string().as_bytes())?;
    Ok(child)
}

fn stop_all(dir: &NetworkDir, processes: &mut [Process], log: &mut dyn FnMut(&str)) {
    let pids: Vec<u32> = processes
        .iter()
        .filter_map(|p| p.child.as_ref().map(Child::id).or(p.adopted))
        .collect();
    for &pid in &pids {
        signal(pid, Signal::TERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        let mut running = 0;
        for process in processes.iter_mut() {
            if let Some(child) = &mut process.child {
                if matches!(child.try_wait(), Ok(None)) {
                    running += 1;
                } else {
                    process.child = None;
                }
            }
            if let Some(pid) = process.adopted {
                if process_matches(
                    pid,
                    &dir.node_config(&process.node.name).display().to_string(),
                ) {
                    running += 1;
                } else {
                    process.adopted = None;
                }
            }
        }
        if running == 0 {
            break;
        }
        if Instant::now() > deadline {
            log(&format!(
                "{running} node(s) did not stop in time; killing them"
            ));
            for process in processes.iter_mut() {
                if let Some(child) = &mut process.child {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                if let Some(pid) = process.adopted.take() {
                    signal(pid, Signal::KILL);
                }
            }
            break;
        }
        std::thread::sleep(POLL);
    }
    for process in processes.iter() {
        let _ = std::fs::remove_file(dir.node_pid(&process.node.name));
        log(&format!("{}: stopped", process.node.name));
    }
}

/// Starts `weft supervise` for `dir` in the background (its own process
/// group, output to `supervisor.log`) unless one runs; returns its pid.
pub fn spawn_background(dir: &NetworkDir, weft: &Path) -> Result<u32, NetworkError> {
    if let Some(pid) = running_supervisor(dir) {
        return Ok(pid);
    }
    let child = spawn_detached(
        weft,
        &[
            "supervise".as_ref(),
            "--dir".as_ref(),
            dir.root().as_os_str(),
        ],
        &dir.supervisor_log(),
        dir.root(),
    )?;
    let pid = child.id();
    // The supervisor writes its own pid file; wait for it so a `weft down`
    // right after `weft up` finds it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while running_supervisor(dir) != Some(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(pid)
}

/// Claims the supervisor pid file for this process, refusing when another
/// supervisor runs for the same directory.
pub fn claim(dir: &NetworkDir) -> Result<(), NetworkError> {
    if let Some(pid) = running_supervisor(dir)
        && pid != std::process::id()
    {
        return Err(NetworkError::Supervisor(format!(
            "a supervisor already runs for {} (pid {pid})",
            dir.root().display()
        )));
    }
    write_atomic(
        &dir.supervisor_pid(),
        std::process::id().to_string().as_bytes(),
    )
}

/// Stops `node` if it runs, so the supervisor starts it again (with its
/// config file as it is now). Returns the pid stopped.
pub fn restart_node(dir: &NetworkDir, node: &Node) -> Option<u32> {
    let pid = running_node(dir, node)?;
    signal(pid, Signal::TERM);
    let deadline = Instant::now() + STOP_GRACE;
    while running_node(dir, node) == Some(pid) {
        if Instant::now() > deadline {
            signal(pid, Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Some(pid)
}

/// Stops the supervisor (which stops its nodes) and any node left running
/// without one. Returns how many processes were signalled.
pub fn stop_network(
    dir: &NetworkDir,
    progress: &mut dyn FnMut(&str),
) -> Result<usize, NetworkError> {
    let mut signalled = 0;
    if let Some(pid) = running_supervisor(dir) {
        progress(&format!(
            "stopping the supervisor (pid {pid}) and its nodes"
        ));
        signal(pid, Signal::TERM);
        signalled += 1;
        let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(5);
        while running_supervisor(dir).is_some() {
            if Instant::now() > deadline {
                progress("the supervisor did not stop in time; killing it");
                signal(pid, Signal::KILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_file(dir.supervisor_pid());
    let (spec, _) = dir.load_spec()?;
    let orphans: Vec<(Node, u32)> = nodes(&spec)
        .into_iter()
        .filter_map(|node| running_node(dir, &node).map(|pid| (node, pid)))
        .collect();
    for (node, pid) in &orphans {
        progress(&format!("stopping {} (pid {pid})", node.name));
        signal(*pid, Signal::TERM);
        signalled += 1;
    }
    let deadline = Instant::now() + STOP_GRACE;
    for (node, pid) in &orphans {
        while running_node(dir, node).is_some() {
            if Instant::now() > deadline {
                signal(*pid, Signal::KILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(dir.node_pid(&node.name));
    }
    Ok(signalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_doubling_up_to_the_maximum() {
        let mut restarts = Restarts::new();
        assert!(restarts.due());
        let waits: Vec<Duration> = (0..8).map(|_| restarts.failed()).collect();
        assert_eq!(waits[0], BACKOFF_MIN);
        assert_eq!(waits[1], BACKOFF_MIN * 2);
        assert_eq!(waits[7], BACKOFF_MAX);
        assert!(!restarts.due(), "a failed process waits");
        restarts.now();
        assert!(restarts.due());
        // A short run keeps the back-off where it is.
        restarts.started();
        restarts.running();
        assert_eq!(restarts.failed(), BACKOFF_MAX);
    }
}
