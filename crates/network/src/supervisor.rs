//! Keeps every node of a network running: starts each as a `weft orderer` or
//! `weft peer` process (its own process group, output appended to
//! `nodes/<node>/node.log`), and each of the spec's event sinks as `weft
//! events sink --sink <name>` (`sinks/<name>/sink.log`); restarts one that
//! exits with a growing back-off, and stops them all (SIGTERM, then SIGKILL
//! after a grace period) when asked.
//!
//! Pid files (`supervisor.pid`, `nodes/<node>/pid`, `sinks/<name>/pid`) let
//! `weft down`, `weft status` and a later supervisor find processes; a
//! process still running from an earlier supervisor (killed without
//! stopping its processes) is adopted, not started twice.

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
                    "{name}{EXITED}{status}); restarting in {:.1}s (see {})",
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

/// What a supervisor's log says after a process's name when it exited
/// (read back by [`restarts`]).
const EXITED: &str = ": exited (";

/// How often a process of the network exited and was started again:
/// (name, times, time and exit status of the last), from the supervisor's
/// log, whose lines `weft supervise` writes as `<UTC time> <line>`.
pub fn restarts(dir: &NetworkDir) -> Vec<(String, usize, String, String)> {
    let log = std::fs::read_to_string(dir.supervisor_log()).unwrap_or_default();
    let mut restarts: std::collections::BTreeMap<&str, (usize, &str, &str)> = Default::default();
    for line in log.lines() {
        let Some((head, rest)) = line.split_once(EXITED) else {
            continue;
        };
        let Some((time, name)) = head.split_once(' ') else {
            continue;
        };
        let status = rest.split_once(')').map_or(rest, |(status, _)| status);
        let entry = restarts.entry(name).or_insert((0, "", ""));
        *entry = (entry.0 + 1, time, status);
    }
    restarts
        .into_iter()
        .map(|(name, (count, time, status))| {
            (name.to_owned(), count, time.to_owned(), status.to_owned())
        })
        .collect()
}

fn pid_of(raw: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(raw).ok()?)
}

/// Whether process `pid` exists and its command line contains `marker`
/// (guards against a recycled pid).
pub fn process_matches(pid: u32, marker: &str) -> bool {
    live_command_line(pid).is_some_and(|cmdline| {
        String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(marker)
    })
}

/// The NUL-separated arguments of process `pid`, if it exists.
fn live_command_line(pid: u32) -> Option<Vec<u8>> {
    rustix::process::test_kill_process(pid_of(pid)?).ok()?;
    std::fs::read(format!("/proc/{pid}/cmdline")).ok()
}

/// Whether `cmdline` (NUL-separated arguments, as `/proc/<pid>/cmdline`
/// gives them, of a process working in `cwd`) supervises the network in
/// `root`: `weft supervise --dir <root>`, or `weft up --foreground` for it
/// (its `--dir`, or the default directory, taken from `cwd`). Not another
/// network's supervisor, nor this network's monitoring supervisor (`weft
/// monitor supervise --dir <root>`), which a pid file left by a supervisor
/// killed outright (or from before a reboot) may name once its pid is reused.
fn supervises(cmdline: &[u8], cwd: Option<&Path>, root: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let dir = args
        .iter()
        .enumerate()
        .find_map(|(at, arg)| match arg.strip_prefix(b"--dir") {
            Some(b"") => args.get(at + 1).copied(),
            Some(rest) => rest.strip_prefix(b"="),
            None => None,
        })
        .unwrap_or(crate::DEFAULT_DIR.as_bytes());
    let dir = Path::new(std::ffi::OsStr::from_bytes(dir));
    let dir = match cwd {
        _ if dir.is_absolute() => dir.to_path_buf(),
        Some(cwd) => cwd.join(dir),
        None => return false,
    };
    // The same directory however it is spelt (`./net`, a symlink).
    let same = match (std::fs::canonicalize(&dir), std::fs::canonicalize(root)) {
        (Ok(a), Ok(b)) => a == b,
        _ => dir == root,
    };
    let command = args.get(1).copied();
    same && (command == Some(b"supervise")
        || command == Some(b"up") && args.contains(&&b"--foreground"[..]))
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
    read_pid(&dir.supervisor_pid()).filter(|&pid| {
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        live_command_line(pid)
            .is_some_and(|cmdline| supervises(&cmdline, cwd.as_deref(), dir.root()))
    })
}

/// The pid of `node` if it is running.
pub fn running_node(dir: &NetworkDir, node: &Node) -> Option<u32> {
    Unit::node(dir, node).running()
}

/// The pid of the spec's event sink `sink` if it is running.
pub fn running_sink(dir: &NetworkDir, sink: &str) -> Option<u32> {
    Unit::sink(dir, sink).running()
}

pub fn running_ca(dir: &NetworkDir, ca: &weft_spec::CertificateAuthoritySpec) -> Option<u32> {
    Unit::ca(dir, ca).running()
}

pub fn running_rest(dir: &NetworkDir) -> Option<u32> {
    Unit::rest(dir).running()
}

/// One process the supervisor keeps running: a node or an event sink.
#[derive(Debug, Clone)]
struct Unit {
    name: String,
    args: Vec<std::ffi::OsString>,
    cwd: std::path::PathBuf,
    log: std::path::PathBuf,
    pid_file: std::path::PathBuf,
    /// Present while a restart was asked for (`restart_node`): the exit
    /// that follows is not a crash, and the process starts again at once.
    planned: std::path::PathBuf,
    /// Text of its command line that no other process has.
    marker: String,
}

impl Unit {
    fn node(dir: &NetworkDir, node: &Node) -> Unit {
        let config = dir.node_config(&node.name);
        Unit {
            name: node.name.clone(),
            args: vec![
                node.kind().into(),
                "start".into(),
                "--config".into(),
                config.clone().into(),
            ],
            cwd: dir.node_dir(&node.name),
            log: dir.node_log(&node.name),
            pid_file: dir.node_pid(&node.name),
            planned: dir.node_dir(&node.name).join("restart"),
            marker: config.display().to_string(),
        }
    }

    fn sink(dir: &NetworkDir, sink: &str) -> Unit {
        let root = dir.root().display().to_string();
        Unit {
            name: format!("event sink {sink}"),
            args: vec![
                "events".into(),
                "sink".into(),
                "--dir".into(),
                root.clone().into(),
                "--sink".into(),
                sink.into(),
            ],
            cwd: dir.sink_dir(sink),
            log: dir.sink_log(sink),
            pid_file: dir.sink_pid(sink),
            planned: dir.sink_dir(sink).join("restart"),
            // The command line ends with a NUL, read as a space: the
            // trailing space keeps sink `a` from matching sink `ab`.
            marker: format!("events sink --dir {root} --sink {sink} "),
        }
    }

    /// A certificate authority (`weft ca start --home organizations/fabric-ca/<org>`).
    fn ca(dir: &NetworkDir, ca: &weft_spec::CertificateAuthoritySpec) -> Unit {
        let home = crate::cas::home(&dir.organizations(), ca);
        Unit {
            name: ca.name.clone(),
            args: vec![
                "ca".into(),
                "start".into(),
                "--home".into(),
                home.clone().into(),
            ],
            cwd: dir.node_dir(&ca.name),
            log: dir.node_log(&ca.name),
            pid_file: dir.node_pid(&ca.name),
            planned: dir.node_dir(&ca.name).join("restart"),
            // Trailing space: `…/org1` must not match `…/org10`.
            marker: format!("ca start --home {} ", home.display()),
        }
    }

    /// The REST gateway (`weft rest start --config rest/rest.yaml`).
    fn rest(dir: &NetworkDir) -> Unit {
        let config = crate::rest::config(dir);
        let home = crate::rest::dir(dir);
        Unit {
            name: "rest".into(),
            args: vec![
                "rest".into(),
                "start".into(),
                "--config".into(),
                config.clone().into(),
            ],
            cwd: home.clone(),
            log: home.join("rest.log"),
            pid_file: home.join("pid"),
            planned: home.join("restart"),
            marker: format!("rest start --config {} ", config.display()),
        }
    }

    /// The certificate authorities, every node of the spec, its event
    /// sinks, then the REST gateway.
    fn all(dir: &NetworkDir, spec: &weft_spec::NetworkSpec) -> Vec<Unit> {
        spec.certificate_authorities()
            .iter()
            .map(|ca| Unit::ca(dir, ca))
            .chain(nodes(spec).iter().map(|node| Unit::node(dir, node)))
            .chain(
                spec.event_sinks
                    .iter()
                    .map(|sink| Unit::sink(dir, &sink.name)),
            )
            .chain(spec.rest_port().map(|_| Unit::rest(dir)))
            .collect()
    }

    fn running(&self) -> Option<u32> {
        read_pid(&self.pid_file).filter(|&pid| self.is(pid))
    }

    fn is(&self, pid: u32) -> bool {
        process_matches(pid, &self.marker)
    }
}

struct Process {
    unit: Unit,
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
    let mut processes: Vec<Process> = Unit::all(dir, &spec)
        .into_iter()
        .map(|unit| Process {
            adopted: unit.running(),
            unit,
            child: None,
            restarts: Restarts::new(),
        })
        .collect();
    for process in &processes {
        if let Some(pid) = process.adopted {
            log(&format!(
                "{}: already running (pid {pid}), adopted",
                process.unit.name
            ));
        }
    }
    let mut sinks = spec.event_sinks.clone();
    let mut spec_changed = modified(&dir.spec_file());
    while !stop.load(Ordering::SeqCst) {
        // `weft up` with a new spec (or an edit) may add, change or remove
        // event sinks while the nodes keep running.
        let changed = modified(&dir.spec_file());
        if changed != spec_changed {
            spec_changed = changed;
            if let Ok((spec, _)) = dir.load_spec() {
                follow_sinks(dir, &mut processes, &sinks, &spec.event_sinks, log);
                sinks = spec.event_sinks;
            }
        }
        for process in &mut processes {
            check(weft, process, log);
        }
        std::thread::sleep(POLL);
    }
    log("stopping nodes");
    stop_all(&mut processes, log);
    Ok(())
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Brings the supervised sinks from `old` to `new`: removed ones stopped,
/// changed ones restarted (a sink reads its settings at start), new ones
/// added.
fn follow_sinks(
    dir: &NetworkDir,
    processes: &mut Vec<Process>,
    old: &[weft_spec::EventSinkSpec],
    new: &[weft_spec::EventSinkSpec],
    log: &mut dyn FnMut(&str),
) {
    for sink in old {
        let now = new.iter().find(|s| s.name == sink.name);
        if now == Some(sink) {
            continue;
        }
        let name = Unit::sink(dir, &sink.name).name;
        let Some(at) = processes.iter().position(|p| p.unit.name == name) else {
            continue;
        };
        if now.is_none() {
            let mut gone = vec![processes.remove(at)];
            log(&format!("{name}: removed from the spec"));
            stop_all(&mut gone, log);
        } else {
            log(&format!("{name}: changed in the spec; restarting"));
            let process = &mut processes[at];
            if let Some(pid) = process.child.as_ref().map(Child::id).or(process.adopted) {
                let _ = write_atomic(&process.unit.planned, b"");
                signal(pid, Signal::TERM);
            }
            process.restarts.now();
        }
    }
    for sink in new {
        if !old.iter().any(|s| s.name == sink.name) {
            let unit = Unit::sink(dir, &sink.name);
            log(&format!("{}: added to the spec", unit.name));
            processes.push(Process {
                adopted: unit.running(),
                unit,
                child: None,
                restarts: Restarts::new(),
            });
        }
    }
}

fn check(weft: &Path, process: &mut Process, log: &mut dyn FnMut(&str)) {
    let unit = &process.unit;
    if let Some(pid) = process.adopted {
        if unit.is(pid) {
            return;
        }
        log(&format!("{}: adopted process {pid} is gone", unit.name));
        process.adopted = None;
        let _ = std::fs::remove_file(&unit.planned);
        process.restarts.now();
    }
    if let Some(child) = &mut process.child {
        if unit.planned.exists() && matches!(child.try_wait(), Ok(Some(_))) {
            // A restart asked for: at once, and no step of the crash
            // back-off.
            let _ = std::fs::remove_file(&unit.planned);
            log(&format!("{}: stopped for a restart", unit.name));
            process.restarts.now();
        } else if process
            .restarts
            .still_running(child, &unit.name, &unit.log, log)
        {
            return;
        }
        process.child = None;
        let _ = std::fs::remove_file(&unit.pid_file);
    }
    if !process.restarts.due() {
        return;
    }
    let started = start(weft, unit);
    process.child = process.restarts.start_outcome(started, &unit.name, log);
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

fn start(weft: &Path, unit: &Unit) -> Result<Child, NetworkError> {
    std::fs::create_dir_all(&unit.cwd).map_err(|e| NetworkError::io(&unit.cwd, e))?;
    let args: Vec<&std::ffi::OsStr> = unit.args.iter().map(|a| a.as_os_str()).collect();
    let child = spawn_detached(weft, &args, &unit.log, &unit.cwd)?;
    write_atomic(&unit.pid_file, child.id().to_string().as_bytes())?;
    Ok(child)
}

fn stop_all(processes: &mut [Process], log: &mut dyn FnMut(&str)) {
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
                if process.unit.is(pid) {
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
        let _ = std::fs::remove_file(&process.unit.pid_file);
        log(&format!("{}: stopped", process.unit.name));
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

/// Stops `node` if it runs, so the supervisor starts it again at once (with
/// its config file as it is now), not as after a crash. Returns the pid
/// stopped.
/// Refuses to start a network when a port one of its stopped nodes would
/// bind is taken (another network, another program): its clients would
/// otherwise talk to whatever listens there.
pub fn check_ports_free(
    dir: &NetworkDir,
    spec: &weft_spec::NetworkSpec,
) -> Result<(), NetworkError> {
    for node in dir.nodes(spec) {
        if running_node(dir, &node).is_some() {
            continue;
        }
        let addresses = [
            ("its port", Some(node.listen_address())),
            ("its operations port", node.operations_listen_address()),
        ];
        for (what, address) in addresses {
            let Some(address) = address else { continue };
            if let Err(error) = std::net::TcpListener::bind(&address)
                && error.kind() == std::io::ErrorKind::AddrInUse
            {
                return Err(NetworkError::Refused(format!(
                    "{}: {what}, {address}, is in use by another program (another weft network? \
                     `weft status --dir DIR` / `weft down --dir DIR` there); stop it or give this \
                     network other ports in its spec",
                    node.name
                )));
            }
        }
    }
    if let Some(port) = spec.rest_port()
        && Unit::rest(dir).running().is_none()
        && let Err(error) = std::net::TcpListener::bind(("127.0.0.1", port))
        && error.kind() == std::io::ErrorKind::AddrInUse
    {
        return Err(NetworkError::Refused(format!(
            "the REST gateway's port, {port}, is in use by another program (another weft \
             network?); stop it, or set `rest: {{port: N}}` (or `rest: {{enabled: false}}`) in the spec"
        )));
    }
    for ca in spec.certificate_authorities() {
        if Unit::ca(dir, &ca).running().is_some() {
            continue;
        }
        for (what, port) in [
            ("port", Some(ca.port)),
            ("operations port", ca.operations_port),
        ] {
            let Some(port) = port else { continue };
            if let Err(error) = std::net::TcpListener::bind(("127.0.0.1", port))
                && error.kind() == std::io::ErrorKind::AddrInUse
            {
                return Err(NetworkError::Refused(format!(
                    "{}: its {what}, {port}, is in use by another program (another weft \
                     network, a Fabric CA?); stop it or give the organisation another \
                     `caPort`/`caOperationsPort` in the spec",
                    ca.name
                )));
            }
        }
    }
    Ok(())
}

pub fn restart_node(dir: &NetworkDir, node: &Node) -> Option<u32> {
    let unit = Unit::node(dir, node);
    let pid = unit.running()?;
    let _ = write_atomic(&unit.planned, b"");
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
    let orphans: Vec<(Unit, u32)> = Unit::all(dir, &spec)
        .into_iter()
        .filter_map(|unit| unit.running().map(|pid| (unit, pid)))
        .collect();
    for (unit, pid) in &orphans {
        progress(&format!("stopping {} (pid {pid})", unit.name));
        signal(*pid, Signal::TERM);
        signalled += 1;
    }
    let deadline = Instant::now() + STOP_GRACE;
    for (unit, pid) in &orphans {
        while unit.running().is_some() {
            if Instant::now() > deadline {
                signal(*pid, Signal::KILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(&unit.pid_file);
    }
    Ok(signalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line as `/proc/<pid>/cmdline` holds it.
    fn cmdline(args: &[&str]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for arg in args {
            bytes.extend_from_slice(arg.as_bytes());
            bytes.push(0);
        }
        bytes
    }

    #[test]
    fn only_this_directorys_supervisor_counts_as_its_supervisor() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("net");
        std::fs::create_dir_all(&root).expect("dir");
        let at = |path: &Path| path.display().to_string();
        let elsewhere = Some(Path::new("/"));
        let ours = cmdline(&["/usr/bin/weft", "supervise", "--dir", &at(&root)]);
        assert!(supervises(&ours, elsewhere, &root));
        // Spelt another way, the directory is still the same.
        let respelt = tmp.path().join(".").join("net");
        assert!(supervises(
            &cmdline(&["weft", "supervise", "--dir", &at(&respelt)]),
            elsewhere,
            &root
        ));
        assert!(supervises(&ours, elsewhere, &respelt));
        assert!(supervises(
            &cmdline(&["weft", "supervise", "--dir", "net"]),
            Some(tmp.path()),
            &root
        ));
        // Another network's supervisor, whether or not its directory exists.
        std::fs::create_dir_all(tmp.path().join("other")).expect("dir");
        for other in ["other", "gone"] {
            let other = at(&tmp.path().join(other));
            assert!(!supervises(
                &cmdline(&["weft", "supervise", "--dir", &other]),
                elsewhere,
                &root
            ));
        }
        // The monitoring supervisor of the same network.
        assert!(!supervises(
            &cmdline(&["weft", "monitor", "supervise", "--dir", &at(&root)]),
            elsewhere,
            &root
        ));
        // A process that merely mentions the words.
        assert!(!supervises(
            &cmdline(&["sh", "-c", "supervise", "--dir", &at(&root)]),
            elsewhere,
            &root
        ));
        assert!(!supervises(b"", elsewhere, &root));
        // A relative directory of a process whose directory is unknown.
        assert!(!supervises(
            &cmdline(&["weft", "supervise", "--dir", "net"]),
            None,
            &root
        ));
    }

    #[test]
    fn weft_up_in_the_foreground_supervises_its_directory() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let default = tmp.path().join(crate::DEFAULT_DIR);
        std::fs::create_dir_all(&default).expect("dir");
        let root = tmp.path().join("net");
        std::fs::create_dir_all(&root).expect("dir");
        let cwd = Some(tmp.path());
        let up = |args: &[&str], root: &Path| {
            let mut all = vec!["/usr/local/bin/weft", "up"];
            all.extend_from_slice(args);
            supervises(&cmdline(&all), cwd, root)
        };
        assert!(up(&["--foreground"], &default));
        assert!(up(&["spec.yaml", "--foreground", "--dir", "net"], &root));
        assert!(up(&["--dir=net", "--foreground"], &root));
        assert!(up(
            &["--foreground", "--dir", &root.display().to_string()],
            &root
        ));
        // Not attached: that `weft up` starts a supervisor and exits.
        assert!(!up(&["--dir", "net"], &root));
        // Another directory's.
        assert!(!up(&["--foreground"], &root));
        assert!(!up(&["--foreground", "--dir", "net"], &default));
        assert!(!supervises(
            &cmdline(&["weft", "up", "--foreground"]),
            Some(Path::new("/")),
            &default
        ));
    }

    #[test]
    fn a_pid_file_naming_another_process_is_no_supervisor() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = NetworkDir::new(tmp.path().join("net"));
        std::fs::create_dir_all(dir.root()).expect("dir");
        // This test process is alive but is no `weft supervise --dir`.
        let me = std::process::id();
        assert!(live_command_line(me).is_some_and(|cmdline| !cmdline.is_empty()));
        write_atomic(&dir.supervisor_pid(), me.to_string().as_bytes()).expect("pid file");
        assert_eq!(running_supervisor(&dir), None);
        // Nor is a pid no process has (above `pid_max`, which is at most 2^22).
        write_atomic(&dir.supervisor_pid(), b"4194304").expect("pid file");
        assert_eq!(running_supervisor(&dir), None);
    }

    #[test]
    fn restarts_are_read_back_from_the_log_it_writes() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = NetworkDir::new(tmp.path());
        let mut lines = Vec::new();
        let mut log = |line: &str| lines.push(line.to_owned());
        let mut backoff = Restarts::new();
        for status in [1, 9] {
            let mut child = Command::new("sh")
                .args(["-c", &format!("exit {status}")])
                .spawn()
                .expect("sh");
            let _ = child.wait();
            backoff.still_running(&mut child, "event sink r", Path::new("x.log"), &mut log);
        }
        let text: String = lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("2026-01-0{}T00:00:00Z {line}\n", i + 1))
            .collect();
        std::fs::write(
            dir.supervisor_log(),
            format!("2026 peer0: started (pid 3)\n{text}"),
        )
        .expect("log");
        assert_eq!(
            restarts(&dir),
            vec![(
                "event sink r".to_owned(),
                2,
                "2026-01-02T00:00:00Z".to_owned(),
                "exit status: 9".to_owned()
            )]
        );
    }

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
