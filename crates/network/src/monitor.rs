//! `weft monitor up|down|status`: a real Prometheus scraping every node's
//! operations service and a real Alertmanager, as local processes beside
//! the network (Debian's `prometheus` and `prometheus-alertmanager`), with
//! weft's alert rules and a receiver that logs every notification. A
//! monitoring supervisor (`weft monitor supervise`, like the nodes') keeps
//! the three running.
//!
//! Files in `<network>/monitoring/`: `prometheus.yml`, `rules/weft.yml`
//! `alertmanager.yml` and `grafana/` (a dashboard with Grafana provisioning
//! files; weft does not run Grafana) are written when missing and then
//! yours to edit;
//! `targets.json` (what Prometheus scrapes, one entry per node with its
//! network, organisation, node and role labels) is rewritten by every
//! `weft monitor up`. Data, logs, pid files and `alerts.log` (the receiver's
//! record of notifications) live there too.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_spec::NetworkSpec;

use std::sync::atomic::{AtomicBool, Ordering};

use rustix::process::Signal;

use crate::NetworkError;
use crate::dir::{NetworkDir, write_atomic};
use crate::nodes::{Role, nodes};
use crate::supervisor::{Restarts, STOP_GRACE, process_matches, read_pid, signal};

/// The alert rules, as written into `rules/weft.yml`.
pub const RULES: &str = include_str!("monitoring/weft-rules.yml");
/// The Grafana dashboards (`grafana/dashboards/<file>`).
pub const DASHBOARDS: [(&str, &str); 3] = [
    (
        "weft-overview.json",
        include_str!("monitoring/grafana/weft-overview.json"),
    ),
    (
        "weft-channel.json",
        include_str!("monitoring/grafana/weft-channel.json"),
    ),
    (
        "weft-node.json",
        include_str!("monitoring/grafana/weft-node.json"),
    ),
];
const GRAFANA_DATASOURCE: &str = include_str!("monitoring/grafana/datasource.yml");
const GRAFANA_DASHBOARDS: &str = include_str!("monitoring/grafana/dashboards.yml");

/// Where the monitoring processes listen and where alerts also go.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    pub prometheus_port: u16,
    pub alertmanager_port: u16,
    /// The log receiver (Alertmanager's default webhook).
    pub receiver_port: u16,
    /// Another webhook every notification is posted to.
    pub webhook: Option<String>,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            prometheus_port: 9090,
            alertmanager_port: 9093,
            receiver_port: 9095,
            webhook: None,
        }
    }
}

/// The three processes `weft monitor up` starts.
const PROCESSES: [&str; 3] = ["prometheus", "alertmanager", "receiver"];

fn monitoring(dir: &NetworkDir) -> PathBuf {
    dir.root().join("monitoring")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NetworkError + '_ {
    move |e| NetworkError::io(path, e)
}

/// A program on the PATH, or an error saying how to install it.
fn program(names: &[&str]) -> Result<PathBuf, NetworkError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(NetworkError::Refused(format!(
        "{} is not installed; install Prometheus and Alertmanager with \
         `apt-get install prometheus prometheus-alertmanager` (Debian/Ubuntu)",
        names[0]
    )))
}

/// `targets.json`: every node with an operations port.
pub fn targets(spec: &NetworkSpec) -> String {
    let entries: Vec<serde_json::Value> = nodes(spec)
        .iter()
        .filter_map(|node| {
            let address = node.operations_address()?;
            let role = match node.role {
                Role::Orderer { .. } => "orderer",
                Role::Peer { .. } => "peer",
            };
            Some(serde_json::json!({
                "targets": [address],
                "labels": {
                    "__scheme__": if node.operations_tls { "https" } else { "http" },
                    "network": spec.name,
                    "organization": node.msp_id,
                    "node": node.name,
                    "role": role,
                },
            }))
        })
        .chain(spec.certificate_authorities().into_iter().filter_map(|ca| {
            let port = ca.operations_port?;
            Some(serde_json::json!({
                "targets": [format!("127.0.0.1:{port}")],
                "labels": {
                    "__scheme__": "http",
                    "network": spec.name,
                    "organization": ca.msp_id,
                    "node": ca.name,
                    "role": "ca",
                },
            }))
        }))
        .collect();
    serde_json::to_string_pretty(&entries).unwrap_or_default()
}

/// `tls/ca.pem`: every organisation's TLS CA, which Prometheus trusts
/// when it scrapes over HTTPS.
fn write_scrape_roots(dir: &NetworkDir, spec: &NetworkSpec) -> Result<(), NetworkError> {
    let mut bundle = Vec::new();
    for root in crate::nodes::tls_roots(spec, dir) {
        bundle.extend(std::fs::read(&root).map_err(io(&root))?);
        bundle.push(b'\n');
    }
    write_atomic(&monitoring(dir).join("tls/ca.pem"), &bundle)
}

/// The TLS directory of the first organisation's admin, relative to the
/// monitoring directory: its client certificate is what Prometheus presents
/// (every node's operations port trusts the network's TLS CAs for clients).
fn scrape_identity(spec: &NetworkSpec) -> Result<PathBuf, NetworkError> {
    let org = spec
        .organizations
        .first()
        .ok_or_else(|| NetworkError::Refused("the spec has no organisation to scrape as".into()))?;
    Ok(weft_material::layout::user_dir(
        &weft_material::layout::peer_org_dir(Path::new("../organizations"), &org.domain),
        "Admin",
        &org.domain,
    )
    .join("tls"))
}

/// `prometheus.yml`.
fn prometheus_config(options: &MonitorOptions, identity: &Path) -> String {
    let identity = identity.display();
    format!(
        "# Written by weft monitor up; yours to edit (it is not rewritten).
global:
  scrape_interval: 5s
  scrape_timeout: 4s
  evaluation_interval: 5s
rule_files:
  - rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{}']
scrape_configs:
  - job_name: weft
    file_sd_configs:
      - files: [targets.json]
    # For nodes whose operations ports speak HTTPS (spec `operations: {{tls: true}}`):
    # the network's TLS CAs, and an admin's TLS client certificate.
    tls_config:
      ca_file: tls/ca.pem
      cert_file: {identity}/client.crt
      key_file: {identity}/client.key
",
        options.alertmanager_port
    )
}

/// `alertmanager.yml`: grouped by network, organisation and alert; a node
/// down inhibits that node's lag alerts; every notification goes to the
/// log receiver and the configured webhook.
fn alertmanager_config(options: &MonitorOptions) -> String {
    let mut hooks = format!(
        "      - url: 'http://127.0.0.1:{}/alerts'\n        send_resolved: true\n",
        options.receiver_port
    );
    if let Some(webhook) = &options.webhook {
        hooks.push_str(&format!(
            "      - url: {}\n        send_resolved: true\n",
            serde_json::Value::String(webhook.clone())
        ));
    }
    format!(
        "# Written by weft monitor up; yours to edit (it is not rewritten).\n\
         route:\n  receiver: weft\n  group_by: [network, organization, alertname]\n\
         \x20 group_wait: 10s\n  group_interval: 30s\n  repeat_interval: 4h\n\
         receivers:\n  - name: weft\n    webhook_configs:\n{hooks}\
         inhibit_rules:\n  - source_matchers: [alertname = WeftNodeDown]\n\
         \x20   target_matchers: [alertname = WeftPeerLagging]\n    equal: [network, node]\n"
    )
}

fn write_if_missing(path: &Path, text: &str) -> Result<(), NetworkError> {
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    write_atomic(path, text.as_bytes())
}

fn pid_file(dir: &NetworkDir, process: &str) -> PathBuf {
    monitoring(dir).join(format!("{process}.pid"))
}

/// The pid of a monitoring process (or `supervisor`) of this network, if
/// it runs.
fn running(dir: &NetworkDir, process: &str) -> Option<u32> {
    let pid = read_pid(&pid_file(dir, process))?;
    process_matches(pid, &marker(dir, process)).then_some(pid)
}

/// `weft monitor supervise` for this network.
fn supervisor_args(dir: &NetworkDir) -> Vec<String> {
    vec![
        "monitor".into(),
        "supervise".into(),
        "--dir".into(),
        dir.root().display().to_string(),
    ]
}

/// What the command line of this network's monitoring `process` holds and
/// no other process's does (not this network's supervisor, which names the
/// same directory, nor another network's): a pid file whose process died
/// outright, or from before a reboot, may name a reused pid. The trailing
/// space (arguments are NUL-separated) keeps `…/net` from matching `…/net2`.
fn marker(dir: &NetworkDir, process: &str) -> String {
    let files = monitoring(dir).display().to_string();
    match process {
        "supervisor" => format!("{} ", supervisor_args(dir).join(" ")),
        "receiver" => format!("--log {files}/alerts.log "),
        name => format!("--config.file={files}/{name}.yml "),
    }
}

/// One process the monitoring supervisor keeps running.
struct Monitored {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

/// What runs, from the ports `weft monitor up` chose (`ports.json`).
fn monitored(dir: &NetworkDir, weft: &Path) -> Result<Vec<Monitored>, NetworkError> {
    monitored_with(dir, weft, program)
}

/// [`monitored`], finding Prometheus's programs with `program`.
fn monitored_with(
    dir: &NetworkDir,
    weft: &Path,
    program: impl Fn(&[&str]) -> Result<PathBuf, NetworkError>,
) -> Result<Vec<Monitored>, NetworkError> {
    let ports = ports(dir)?;
    let port = |name: &str| ports[name].as_u64().unwrap_or_default();
    let root = monitoring(dir).display().to_string();
    Ok(vec![
        Monitored {
            name: "receiver",
            program: weft.to_path_buf(),
            args: vec![
                "monitor".into(),
                "receive".into(),
                "--listen".into(),
                format!("127.0.0.1:{}", port("receiver")),
                "--log".into(),
                format!("{root}/alerts.log"),
            ],
        },
        Monitored {
            name: "alertmanager",
            program: program(&["prometheus-alertmanager", "alertmanager"])?,
            args: vec![
                format!("--config.file={root}/alertmanager.yml"),
                format!("--storage.path={root}/data/alertmanager"),
                format!("--web.listen-address=127.0.0.1:{}", port("alertmanager")),
                "--cluster.listen-address=".into(),
            ],
        },
        Monitored {
            name: "prometheus",
            program: program(&["prometheus"])?,
            args: vec![
                format!("--config.file={root}/prometheus.yml"),
                format!("--storage.tsdb.path={root}/data/prometheus"),
                format!("--web.listen-address=127.0.0.1:{}", port("prometheus")),
                "--web.enable-lifecycle".into(),
            ],
        },
    ])
}

/// Starts `program args` in the monitoring directory, output appended to
/// `<name>.log`, in its own process group.
fn spawn(
    dir: &NetworkDir,
    name: &str,
    program: &Path,
    args: &[String],
) -> Result<std::process::Child, NetworkError> {
    let log_path = monitoring(dir).join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let err = log.try_clone().map_err(io(&log_path))?;
    Command::new(program)
        .args(args)
        .current_dir(monitoring(dir))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(io(program))
}

/// The monitoring supervisor (`weft monitor supervise`, started by
/// `weft monitor up`): keeps Prometheus, Alertmanager and the receiver
/// running, restarting one that exits with a growing back-off, until
/// `stop`; then stops them.
pub fn supervise(
    dir: &NetworkDir,
    weft: &Path,
    stop: &AtomicBool,
    log: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    if let Some(pid) = running(dir, "supervisor")
        && pid != std::process::id()
    {
        return Err(NetworkError::Supervisor(format!(
            "a monitoring supervisor already runs for {} (pid {pid})",
            dir.root().display()
        )));
    }
    write_atomic(
        &pid_file(dir, "supervisor"),
        std::process::id().to_string().as_bytes(),
    )?;
    struct State {
        process: Monitored,
        child: Option<std::process::Child>,
        adopted: Option<u32>,
        restarts: Restarts,
    }
    let mut states: Vec<State> = monitored(dir, weft)?
        .into_iter()
        .map(|process| State {
            adopted: running(dir, process.name),
            process,
            child: None,
            restarts: Restarts::new(),
        })
        .collect();
    while !stop.load(Ordering::SeqCst) {
        for state in &mut states {
            let name = state.process.name;
            if let Some(pid) = state.adopted {
                if running(dir, name) == Some(pid) {
                    continue;
                }
                log(&format!("{name}: process {pid} is gone"));
                state.adopted = None;
            }
            if let Some(child) = &mut state.child {
                let log_file = monitoring(dir).join(format!("{name}.log"));
                if state.restarts.still_running(child, name, &log_file, log) {
                    continue;
                }
                state.child = None;
                let _ = std::fs::remove_file(pid_file(dir, name));
            }
            if !state.restarts.due() {
                continue;
            }
            let started =
                spawn(dir, name, &state.process.program, &state.process.args).and_then(|child| {
                    write_atomic(&pid_file(dir, name), child.id().to_string().as_bytes())?;
                    Ok(child)
                });
            state.child = state.restarts.start_outcome(started, name, log);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    log("stopping the monitoring processes");
    for state in &states {
        if let Some(pid) = state
            .child
            .as_ref()
            .map(std::process::Child::id)
            .or(state.adopted)
        {
            signal(pid, Signal::TERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for state in &mut states {
        let name = state.process.name;
        if let Some(child) = &mut state.child {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(pid) = state.adopted {
            while running(dir, name) == Some(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if running(dir, name) == Some(pid) {
                signal(pid, Signal::KILL);
            }
        }
        let _ = std::fs::remove_file(pid_file(dir, name));
        log(&format!("{name}: stopped"));
    }
    let _ = std::fs::remove_file(pid_file(dir, "supervisor"));
    Ok(())
}

/// Writes the files, starts the monitoring supervisor unless it runs, and
/// returns once Prometheus and Alertmanager answer ready. `weft` is this
/// binary (it runs the supervisor and the log receiver).
pub fn up(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    options: &MonitorOptions,
    weft: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    // Say how to install what is missing before writing anything.
    program(&["prometheus"])?;
    program(&["prometheus-alertmanager", "alertmanager"])?;
    let root = monitoring(dir);
    std::fs::create_dir_all(root.join("data")).map_err(io(&root))?;
    write_scrape_roots(dir, spec)?;
    write_atomic(&root.join("targets.json"), targets(spec).as_bytes())?;
    write_if_missing(
        &root.join("prometheus.yml"),
        &prometheus_config(options, &scrape_identity(spec)?),
    )?;
    write_if_missing(&root.join("rules/weft.yml"), RULES)?;
    write_if_missing(
        &root.join("alertmanager.yml"),
        &alertmanager_config(options),
    )?;
    // Grafana provisioning (Grafana itself is not started by weft).
    let grafana = root.join("grafana");
    for (file, text) in DASHBOARDS {
        write_if_missing(&grafana.join("dashboards").join(file), text)?;
    }
    write_if_missing(
        &grafana.join("provisioning/datasources/weft.yml"),
        &GRAFANA_DATASOURCE.replace("PROMETHEUS_PORT", &options.prometheus_port.to_string()),
    )?;
    write_if_missing(
        &grafana.join("provisioning/dashboards/weft.yml"),
        &GRAFANA_DASHBOARDS.replace(
            "DASHBOARDS_DIR",
            &grafana.join("dashboards").display().to_string(),
        ),
    )?;
    let supervisor = running(dir, "supervisor");
    if supervisor.is_none() {
        write_atomic(
            &root.join("ports.json"),
            serde_json::json!({
                "prometheus": options.prometheus_port,
                "alertmanager": options.alertmanager_port,
                "receiver": options.receiver_port,
            })
            .to_string()
            .as_bytes(),
        )?;
    }
    let ports = ports(dir)?;
    // The supervisor started here: how it ended, should it end, is read
    // from the child itself (a signal leaves nothing in its log).
    let mut started = None;
    let supervisor = match supervisor {
        Some(pid) => {
            progress(&format!(
                "monitoring supervisor: already running (pid {pid}); ports as it started them"
            ));
            pid
        }
        None => {
            let child = spawn(dir, "supervisor", weft, &supervisor_args(dir))?;
            progress(&format!(
                "monitoring supervisor: started (pid {})",
                child.id()
            ));
            let pid = child.id();
            started = Some(child);
            pid
        }
    };
    for process in ["alertmanager", "prometheus"] {
        let address = format!("127.0.0.1:{}", ports[process]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if matches!(http_get(&address, "/-/ready"), Ok((200, _))) {
                progress(&format!("{process}: ready on http://{address}"));
                break;
            }
            let supervising = process_matches(supervisor, &marker(dir, "supervisor"));
            if !supervising || Instant::now() > deadline {
                let tail = |name: &str| {
                    let path = root.join(format!("{name}.log"));
                    let log = std::fs::read_to_string(&path).unwrap_or_default();
                    let lines: Vec<&str> = log.lines().rev().take(5).collect();
                    format!(
                        "last lines of {}:\n{}",
                        path.display(),
                        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )
                };
                let why = if supervising {
                    "timed out".to_owned()
                } else {
                    let how = started
                        .as_mut()
                        .and_then(|child| child.try_wait().ok().flatten())
                        .map_or(String::new(), |status| format!(" ({status})"));
                    format!(
                        "the monitoring supervisor exited{how}; {}",
                        tail("supervisor")
                    )
                };
                return Err(NetworkError::Refused(format!(
                    "{process} did not become ready on {address} ({why}); {}",
                    tail(process)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// Stops the monitoring supervisor and its processes (their data is kept),
/// and any of them left running without it.
/// Returns how many processes ran.
pub fn down(dir: &NetworkDir, progress: &mut dyn FnMut(&str)) -> Result<usize, NetworkError> {
    let stop = |name: &str, pid: u32, grace: Duration| {
        signal(pid, Signal::TERM);
        let deadline = Instant::now() + grace;
        while running(dir, name) == Some(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if running(dir, name) == Some(pid) {
            signal(pid, Signal::KILL);
        }
        let _ = std::fs::remove_file(pid_file(dir, name));
    };
    // What runs now: the supervisor stops its own processes.
    let ran: Vec<(&str, u32)> = std::iter::once("supervisor")
        .chain(PROCESSES)
        .filter_map(|name| running(dir, name).map(|pid| (name, pid)))
        .collect();
    for &(name, pid) in &ran {
        if running(dir, name) == Some(pid) {
            let grace = if name == "supervisor" {
                STOP_GRACE + Duration::from_secs(5)
            } else {
                STOP_GRACE
            };
            stop(name, pid, grace);
        }
        progress(&format!("{name}: stopped"));
    }
    Ok(ran.len())
}

/// What `weft monitor status` shows: each target's health, firing alerts.
#[derive(Debug, Default)]
pub struct MonitorStatus {
    /// (process, pid) of what runs.
    pub processes: Vec<(String, Option<u32>)>,
    /// (node, address, health, last error).
    pub targets: Vec<(String, String, String, String)>,
    /// (alert name, labels) of alerts Alertmanager holds as active.
    pub alerts: Vec<(String, String)>,
}

fn ports(dir: &NetworkDir) -> Result<serde_json::Value, NetworkError> {
    let path = monitoring(dir).join("ports.json");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        NetworkError::Refused(format!(
            "no monitoring for {} yet: run `weft monitor up`",
            dir.root().display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| NetworkError::Refused(format!("{}: {e}", path.display())))
}

pub fn status(dir: &NetworkDir) -> Result<MonitorStatus, NetworkError> {
    let ports = ports(dir)?;
    let mut status = MonitorStatus {
        processes: std::iter::once("supervisor")
            .chain(PROCESSES)
            .map(|p| (p.to_owned(), running(dir, p)))
            .collect(),
        ..MonitorStatus::default()
    };
    let prometheus = format!("127.0.0.1:{}", ports["prometheus"]);
    if let Ok((200, body)) = http_get(&prometheus, "/api/v1/targets") {
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        for target in value["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            status.targets.push((
                target["labels"]["node"].as_str().unwrap_or("").to_owned(),
                target["scrapeUrl"].as_str().unwrap_or("").to_owned(),
                target["health"].as_str().unwrap_or("").to_owned(),
                target["lastError"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    let alertmanager = format!("127.0.0.1:{}", ports["alertmanager"]);
    if let Ok((200, body)) = http_get(&alertmanager, "/api/v2/alerts?active=true") {
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        for alert in value.as_array().into_iter().flatten() {
            let labels = &alert["labels"];
            let name = labels["alertname"].as_str().unwrap_or("").to_owned();
            let described: Vec<String> = labels
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, _)| *key != "alertname")
                .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
                .collect();
            status.alerts.push((name, described.join(" ")));
        }
    }
    Ok(status)
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The log receiver (`weft monitor receive`): Alertmanager's webhook,
/// appending one line per alert of each notification to `log`.
pub async fn receive(listen: &str, log: PathBuf) -> Result<(), NetworkError> {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| NetworkError::Refused(format!("listening on {listen}: {e}")))?;
    let app = axum::Router::new().route(
        "/alerts",
        post(move |body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut lines = String::new();
                for alert in value["alerts"].as_array().into_iter().flatten() {
                    let labels: Vec<String> = alert["labels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect();
                    lines.push_str(&format!(
                        "{} {} {}\n",
                        alert["startsAt"].as_str().unwrap_or(""),
                        alert["status"].as_str().unwrap_or(""),
                        labels.join(" ")
                    ));
                }
                use std::io::Write;
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .and_then(|mut file| file.write_all(lines.as_bytes()));
                match written {
                    Ok(()) => axum::http::StatusCode::OK,
                    Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                }
            }
        }),
    );
    axum::serve(listener, app)
        .await
        .map_err(|e| NetworkError::Refused(format!("alert receiver: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_monitoring_process_is_told_from_every_other_process() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let weft = Path::new("/usr/local/bin/weft");
        // Command lines as `process_matches` reads them: each argument
        // followed by a space (a NUL in /proc/<pid>/cmdline).
        let line = |program: &Path, args: &[String]| -> String {
            std::iter::once(program.display().to_string())
                .chain(args.iter().cloned())
                .map(|arg| format!("{arg} "))
                .collect()
        };
        let mut lines = Vec::new();
        // `net2` starts with `net`: a marker must not match by prefix.
        for name in ["net", "net2"] {
            let dir = NetworkDir::new(tmp.path().join(name));
            std::fs::create_dir_all(monitoring(&dir)).expect("dir");
            std::fs::write(
                monitoring(&dir).join("ports.json"),
                r#"{"prometheus": 9090, "alertmanager": 9093, "receiver": 9095}"#,
            )
            .expect("ports");
            let processes = monitored_with(&dir, weft, |names| {
                Ok(PathBuf::from("/usr/bin").join(names[0]))
            })
            .expect("monitored");
            for process in processes {
                let text = line(&process.program, &process.args);
                lines.push((dir.clone(), process.name, text));
            }
            lines.push((
                dir.clone(),
                "supervisor",
                line(weft, &supervisor_args(&dir)),
            ));
            // The network's own supervisor names the same directory.
            let network = [
                "supervise".to_owned(),
                "--dir".to_owned(),
                dir.root().display().to_string(),
            ];
            lines.push((dir.clone(), "network supervisor", line(weft, &network)));
        }
        for (dir, name, _) in lines.iter().filter(|(_, n, _)| *n != "network supervisor") {
            let marker = marker(dir, name);
            let matching: Vec<_> = lines
                .iter()
                .filter(|(_, _, text)| text.contains(&marker))
                .map(|(d, n, _)| (d.root().to_path_buf(), *n))
                .collect();
            assert_eq!(matching, [(dir.root().to_path_buf(), *name)], "{marker:?}");
        }
    }

    #[test]
    fn every_node_with_an_operations_port_is_a_labelled_target() {
        let spec = NetworkSpec::default_network();
        let value: serde_json::Value = serde_json::from_str(&targets(&spec)).expect("json");
        let entries = value.as_array().expect("a list");
        assert_eq!(entries.len(), 5);
        let peer = entries
            .iter()
            .find(|e| e["labels"]["node"] == "peer0.org1.example.com")
            .expect("peer0.org1");
        assert_eq!(peer["targets"][0], "127.0.0.1:17051");
        assert_eq!(peer["labels"]["role"], "peer");
        assert_eq!(peer["labels"]["organization"], "Org1MSP");

        // With CAs: each one on its default port is scraped on port + 10000.
        let mut spec = NetworkSpec::default_network();
        spec.certificate_authorities = true;
        let value: serde_json::Value = serde_json::from_str(&targets(&spec)).expect("json");
        let cas: Vec<(&str, &str)> = value
            .as_array()
            .expect("a list")
            .iter()
            .filter(|e| e["labels"]["role"] == "ca")
            .map(|e| {
                (
                    e["labels"]["node"].as_str().expect("node"),
                    e["targets"][0].as_str().expect("target"),
                )
            })
            .collect();
        assert_eq!(
            cas,
            [
                ("ca-org1", "127.0.0.1:17054"),
                ("ca-org2", "127.0.0.1:18054"),
                ("ca-orderer", "127.0.0.1:19054")
            ]
        );
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
