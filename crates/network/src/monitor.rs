//! `weft monitor up|down|status`: a real Prometheus scraping every node's
//! operations service and a real Alertmanager, as local processes beside
//! the network (Debian's `prometheus` and `prometheus-alertmanager`), with
//! weft's alert rules and a receiver that logs every notification.
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

use crate::NetworkError;
use crate::dir::{NetworkDir, write_atomic};
use crate::nodes::{Role, nodes};

/// The alert rules, as written into `rules/weft.yml`.
pub const RULES: &str = include_str!("monitoring/weft-rules.yml");
/// The Grafana dashboard (`grafana/dashboards/weft-overview.json`).
pub const OVERVIEW_DASHBOARD: &str = include_str!("monitoring/grafana/weft-overview.json");
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
                    "network": spec.name,
                    "organization": node.msp_id,
                    "node": node.name,
                    "role": role,
                },
            }))
        })
        .collect();
    serde_json::to_string_pretty(&entries).unwrap_or_default()
}

/// `prometheus.yml`.
fn prometheus_config(options: &MonitorOptions) -> String {
    format!(
        "# Written by weft monitor up; yours to edit (it is not rewritten).\n\
         global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\n  evaluation_interval: 5s\n\
         rule_files:\n  - rules/*.yml\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{}']\n\
         scrape_configs:\n  - job_name: weft\n    file_sd_configs:\n      - files: [targets.json]\n",
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

fn running(dir: &NetworkDir, process: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(dir, process))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let marker = monitoring(dir).display().to_string();
    (String::from_utf8_lossy(&cmdline).contains(&marker) && !stat.contains(") Z ")).then_some(pid)
}

fn spawn(
    dir: &NetworkDir,
    process: &str,
    program: &Path,
    args: &[String],
) -> Result<std::process::Child, NetworkError> {
    let log_path = monitoring(dir).join(format!("{process}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let err = log.try_clone().map_err(io(&log_path))?;
    let child = Command::new(program)
        .args(args)
        .current_dir(monitoring(dir))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(io(program))?;
    write_atomic(&pid_file(dir, process), child.id().to_string().as_bytes())?;
    Ok(child)
}

/// Writes the files and starts whatever is not running; returns once
/// Prometheus and Alertmanager answer ready. `weft` is this binary (it runs
/// the log receiver).
pub fn up(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    options: &MonitorOptions,
    weft: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    let prometheus = program(&["prometheus"])?;
    let alertmanager = program(&["prometheus-alertmanager", "alertmanager"])?;
    let root = monitoring(dir);
    std::fs::create_dir_all(root.join("data")).map_err(io(&root))?;
    write_atomic(&root.join("targets.json"), targets(spec).as_bytes())?;
    write_if_missing(&root.join("prometheus.yml"), &prometheus_config(options))?;
    write_if_missing(&root.join("rules/weft.yml"), RULES)?;
    write_if_missing(
        &root.join("alertmanager.yml"),
        &alertmanager_config(options),
    )?;
    // Grafana provisioning (Grafana itself is not started by weft).
    let grafana = root.join("grafana");
    write_if_missing(
        &grafana.join("dashboards/weft-overview.json"),
        OVERVIEW_DASHBOARD,
    )?;
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
    let root_text = root.display().to_string();
    let commands: [(&str, PathBuf, Vec<String>); 3] = [
        (
            "receiver",
            weft.to_path_buf(),
            vec![
                "monitor".into(),
                "receive".into(),
                "--listen".into(),
                format!("127.0.0.1:{}", options.receiver_port),
                "--log".into(),
                format!("{root_text}/alerts.log"),
            ],
        ),
        (
            "alertmanager",
            alertmanager,
            vec![
                format!("--config.file={root_text}/alertmanager.yml"),
                format!("--storage.path={root_text}/data/alertmanager"),
                format!(
                    "--web.listen-address=127.0.0.1:{}",
                    options.alertmanager_port
                ),
                "--cluster.listen-address=".into(),
            ],
        ),
        (
            "prometheus",
            prometheus,
            vec![
                format!("--config.file={root_text}/prometheus.yml"),
                format!("--storage.tsdb.path={root_text}/data/prometheus"),
                format!("--web.listen-address=127.0.0.1:{}", options.prometheus_port),
                "--web.enable-lifecycle".into(),
            ],
        ),
    ];
    let mut started = std::collections::HashMap::new();
    for (process, program, args) in &commands {
        if let Some(pid) = running(dir, process) {
            progress(&format!("{process}: already running (pid {pid})"));
            continue;
        }
        let child = spawn(dir, process, program, args)?;
        progress(&format!("{process}: started (pid {})", child.id()));
        started.insert(*process, child);
    }
    for (process, port) in [
        ("alertmanager", options.alertmanager_port),
        ("prometheus", options.prometheus_port),
    ] {
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if matches!(http_get(&address, "/-/ready"), Ok((200, _))) {
                progress(&format!("{process}: ready on http://{address}"));
                break;
            }
            let exited = match started.get_mut(process) {
                Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
                None => running(dir, process)
                    .is_none()
                    .then(|| "not running".to_owned()),
            };
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(root.join(format!("{process}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(NetworkError::Refused(format!(
                    "{process} did not become ready on {address} ({}); last lines of {}:\n{}",
                    exited.unwrap_or_else(|| "timed out".into()),
                    root.join(format!("{process}.log")).display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// Stops the monitoring processes (their data is kept).
pub fn down(dir: &NetworkDir, progress: &mut dyn FnMut(&str)) -> Result<(), NetworkError> {
    for process in PROCESSES {
        let Some(pid) = running(dir, process) else {
            continue;
        };
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(dir, process).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if running(dir, process).is_some() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = std::fs::remove_file(pid_file(dir, process));
        progress(&format!("{process}: stopped"));
    }
    Ok(())
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
        processes: PROCESSES
            .iter()
            .map(|p| ((*p).to_owned(), running(dir, p)))
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
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
