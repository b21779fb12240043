//! `weft up` / `down` / `status` / `logs` / `chaincode` as a user runs them:
//! real processes under the supervisor, each test in its own directory with
//! its own ports.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{WEFT, alive, free_port, metric, one_orderer_spec};

/// A network directory that is stopped (`weft down`) when the test ends.
struct Net {
    dir: tempfile::TempDir,
}

impl Net {
    fn new() -> Self {
        Net {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The network directory: `weft-network/`, the default name, in the
    /// test's own working directory.
    fn path(&self) -> PathBuf {
        self.dir.path().join("weft-network")
    }

    fn weft(&self, args: &[&str]) -> Output {
        // `--dir` goes before a `--`, after which all is a chaincode command.
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        Command::new(WEFT)
            .args(&args[..split])
            .arg("--dir")
            .arg(self.path())
            .args(&args[split..])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run weft")
    }

    /// Runs `weft <args>` and returns stdout; panics with stderr on failure.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_progress(args).0
    }

    /// Runs `weft <args>` and returns (stdout, stderr); panics on failure.
    fn ok_with_progress(&self, args: &[&str]) -> (String, String) {
        let output = self.weft(args);
        assert!(
            output.status.success(),
            "weft {args:?} failed:\n{}\n{}\nsupervisor log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.path().join("supervisor.log")).unwrap_or_default()
        );
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn write_spec(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("spec.yaml");
        std::fs::write(&path, text).expect("spec");
        path
    }

    fn pid(&self, file: &str) -> u32 {
        std::fs::read_to_string(self.path().join(file))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Waits until `weft status` reports every node healthy.
    fn wait_healthy(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let output = self.weft(&["status"]);
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.success() {
                return text;
            }
            assert!(Instant::now() < deadline, "network never healthy:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if self.path().join("network.yaml").exists() {
            let _ = self.weft(&["down"]);
        }
    }
}

fn kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The default network (2 orgs, 3 Raft nodes, mychannel, basic) on free ports.
fn default_spec() -> String {
    spec_on_ports(free_port(), free_port())
}

/// The default network with the peers on the given ports.
fn spec_on_ports(org1: u16, org2: u16) -> String {
    format!(
        "name: default-on-free-ports\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{}]}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]}}\n\
         orderers:\n\
         \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n\
         \x20 nodes: 3\n\
         \x20 ports: [{}, {}, {}]\n\
         \x20 batchTimeout: 250ms\n\
         channels:\n\
         \x20 - name: mychannel\n\
         chaincodes:\n\
         \x20 - name: basic\n\
         \x20   launcher: {{builtin: basic}}\n",
        org1,
        org2,
        free_port(),
        free_port(),
        free_port()
    )
}

/// A default network under hostile clients (`weft-fuzz --network` runs the
/// same for as long as asked): mutated and malformed requests to every
/// service of every node, over many TLS connections with a user's
/// certificate, while a normal client submits. No node restarts, every
/// normal transaction commits, nothing beside the network changes.
#[test]
fn a_default_network_survives_hostile_clients() {
    let net = Net::new();
    let spec = net.write_spec(&default_spec());
    net.ok(&["up", spec.to_str().expect("utf8")]);
    let seconds = std::env::var("WEFT_HOSTILE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let outcome = runtime
        .block_on(weft_fuzz::hostile::attack(
            &net.path(),
            Duration::from_secs(seconds),
            6,
            0x5eed,
        ))
        .expect("attack");
    assert!(outcome.requests > 100, "{outcome:?}");
    assert!(outcome.refused > 0, "{outcome:?}");
    assert!(outcome.restarted.is_empty(), "{outcome:?}");
    assert!(outcome.client_failures.is_empty(), "{outcome:?}");
    assert!(outcome.committed > 0, "{outcome:?}");
    assert!(outcome.canary_intact, "{outcome:?}");
    assert_eq!(outcome.stalled_kept, 0, "{outcome:?}");
    for node in std::fs::read_dir(net.path().join("nodes")).expect("nodes") {
        let log = std::fs::read_to_string(node.expect("node").path().join("node.log"))
            .unwrap_or_default();
        assert!(!log.contains("panicked"), "{log}");
    }
    let status = net.ok(&["status"]);
    assert!(status.contains("5/5"), "{status}");
}

#[test]
fn up_invoke_status_kill_down_up_keeps_the_ledger() {
    let net = Net::new();
    let spec = net.write_spec(&default_spec());
    let spec = spec.to_str().expect("utf8");

    let started = Instant::now();
    let (summary, progress) = net.ok_with_progress(&["up", spec]);
    let up_took = started.elapsed();
    // Deployed with the lifecycle: both admins approved, then the commit.
    for step in [
        "basic mychannel: approved by Org1MSP",
        "basic mychannel: approved by Org2MSP",
        "basic mychannel: definition committed (version 1.0, sequence 1",
    ] {
        assert!(progress.contains(step), "{progress}");
    }
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "asset1",
        "blue",
        "5",
        "Tom",
        "100",
        "--org",
        "Org1",
    ]);
    let first_tx = started.elapsed();
    eprintln!(
        "weft up (3 orderers, 2 peers) ready in {:.2}s; first committed transaction {:.2}s after `weft up` started",
        up_took.as_secs_f64(),
        first_tx.as_secs_f64()
    );
    for name in ["connection-org1.json", "connection-org1.yaml"] {
        assert!(summary.contains(name), "{summary}");
    }
    let profile: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            net.path()
                .join("organizations/peerOrganizations/org1.example.com/connection-org1.json"),
        )
        .expect("connection profile"),
    )
    .expect("profile is JSON");
    assert_eq!(profile["organizations"]["Org1"]["mspid"], "Org1MSP");
    assert!(
        profile["peers"]["peer0.org1.example.com"]["tlsCACerts"]["pem"]
            .as_str()
            .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----"))
    );

    // Org2's peer sees the asset; 2-of-2 endorsement (the default policy) worked.
    let asset = net.ok(&[
        "chaincode",
        "query",
        "basic",
        "ReadAsset",
        "asset1",
        "--org",
        "Org2",
    ]);
    assert!(asset.contains("\"Owner\":\"Tom\""), "{asset}");
    let missing = net.weft(&["chaincode", "query", "basic", "ReadAsset", "nope"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("the asset nope does not exist"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let status = net.wait_healthy();
    assert!(status.contains("5/5 node(s) healthy"), "{status}");
    for node in [
        "orderer.example.com",
        "orderer2.example.com",
        "orderer3.example.com",
        "peer0.org1.example.com",
        "peer0.org2.example.com",
    ] {
        let pid = net.pid(&format!("nodes/{node}/pid"));
        eprintln!("idle RSS of {node}: {} KiB (debug build)", rss_kib(pid));
    }
    let log = net.ok(&["logs", "peer0.org1.example.com", "-n", "50"]);
    assert!(log.contains("channel mychannel: joined"), "{log}");

    // A node killed with SIGKILL is restarted by the supervisor.
    let peer = net.pid("nodes/peer0.org2.example.com/pid");
    kill(peer);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = std::fs::read_to_string(net.path().join("nodes/peer0.org2.example.com/pid"))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if now.is_some_and(|pid| pid != peer && alive(pid)) {
            break;
        }
        assert!(Instant::now() < deadline, "peer0.org2 was not restarted");
        std::thread::sleep(Duration::from_millis(100));
    }
    net.wait_healthy();

    // The supervisor itself killed: `weft up` starts a new one, which adopts
    // the running nodes instead of starting them twice.
    let orderer = net.pid("nodes/orderer.example.com/pid");
    kill(net.pid("supervisor.pid"));
    let (_, progress) = net.ok_with_progress(&["up"]);
    assert_eq!(net.pid("nodes/orderer.example.com/pid"), orderer);
    assert!(
        progress.contains("basic mychannel: already defined (version 1.0, sequence 1)"),
        "{progress}"
    );
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "TransferAsset",
        "asset1",
        "Jerry",
        "--org",
        "Org2",
    ]);

    // Fabric's CLI form of a call works too.
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "-c",
        r#"{"Args":["CreateAsset","c1","green","3","Cy","9"]}"#,
    ]);
    let read = net.ok(&[
        "chaincode",
        "query",
        "basic",
        "-c",
        r#"{"function":"ReadAsset","Args":["c1"]}"#,
    ]);
    assert!(read.contains(r#""Owner":"Cy""#), "{read}");
    let bad = net.weft(&["chaincode", "query", "basic", "-c", "[ReadAsset]"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains(r#"expected {"Args":["function","arg",…]}"#),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // down keeps the data; up brings the same ledger back.
    net.ok(&["down"]);
    assert!(!alive(orderer));
    let stopped = net.weft(&["status"]);
    assert!(!stopped.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&stopped.stdout),
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(
        said.contains("not running") && said.contains("the network is stopped; `weft up --dir"),
        "a stopped network is said plainly: {said}"
    );
    assert!(!said.contains("transport"), "{said}");
    assert!(
        said.contains("restarted after exiting")
            && said.contains("peer0.org2.example.com: 1 time(s)"),
        "the crash restart earlier is counted: {said}"
    );
    net.ok(&["up"]);
    let asset = net.ok(&["chaincode", "query", "basic", "ReadAsset", "asset1"]);
    assert!(asset.contains("\"Owner\":\"Jerry\""), "{asset}");

    // The spec's chaincodes may change: an added one is deployed, a changed
    // one upgraded to the next sequence; the peers restart to install them.
    let original = std::fs::read_to_string(spec).expect("spec");
    let basic = "  - name: basic\n    launcher: {builtin: basic}\n";
    assert!(original.contains(basic), "{original}");
    let changed = original.replace(
        basic,
        "  - name: basic\n    endorsementPolicy: \"OR('Org1MSP.peer','Org2MSP.peer')\"\n    launcher: {builtin: basic}\n  - name: basic2\n    launcher: {builtin: basic}\n",
    );
    let changed = net.write_spec(&changed);
    let (_, progress) = net.ok_with_progress(&["up", changed.to_str().expect("utf8")]);
    for step in [
        "peer0.org1.example.com: config changed, restarting",
        "basic mychannel: definition committed (version 1.0, sequence 2",
        "basic2 mychannel: definition committed (version 1.0, sequence 1",
    ] {
        assert!(progress.contains(step), "{progress}");
    }
    net.ok(&[
        "chaincode",
        "invoke",
        "basic2",
        "CreateAsset",
        "asset9",
        "red",
        "1",
        "Ann",
        "7",
    ]);
    let asset = net.ok(&[
        "chaincode",
        "query",
        "basic2",
        "ReadAsset",
        "asset9",
        "--org",
        "Org2",
    ]);
    assert!(asset.contains("\"Owner\":\"Ann\""), "{asset}");
    let asset = net.ok(&["chaincode", "query", "basic", "ReadAsset", "asset1"]);
    assert!(asset.contains("\"Owner\":\"Jerry\""), "{asset}");

    // A spec that changes more than chaincodes is refused, naming both files.
    let other = net.write_spec(&default_spec());
    let refused = net.weft(&["up", other.to_str().expect("utf8")]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("spec.yaml: organizations: differs from the organisations in the network")
            && message.contains("weft-network/network.yaml"),
        "{message}"
    );

    net.ok(&["down", "--purge"]);
    assert!(!net.path().exists());
}

/// `weft up --foreground` supervises in its own process; `weft down` from
/// another terminal stops it and its nodes, which it must not restart.
#[test]
fn weft_down_stops_a_network_attached_in_the_foreground() {
    let net = Net::new();
    let spec = net.write_spec(&support::one_orderer_spec("attached"));
    let mut attached = Command::new(WEFT)
        .arg("up")
        .arg(&spec)
        .arg("--foreground")
        .current_dir(net.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weft up --foreground");
    // Stopped however the test ends.
    struct Attached<'a>(&'a mut std::process::Child);
    impl Drop for Attached<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = attached.stdout.take().expect("stdout");
    let attached = Attached(&mut attached);
    let mut printed = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("stdout");
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("attached: Ctrl-C stops the network") {
            break;
        }
    }
    assert!(
        printed.contains("(attached"),
        "weft up --foreground:\n{printed}"
    );
    let peer = net.pid("nodes/peer0.org1.example.com/pid");
    let (_, down) = net.ok_with_progress(&["down"]);
    assert!(
        down.contains("stopping the supervisor"),
        "weft down did not find the attached supervisor:\n{down}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = attached.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "weft up --foreground still runs after weft down"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "weft up --foreground ended with {status}");
    assert!(!alive(peer), "peer0.org1 (pid {peer}) still runs");
    // Nothing was started again behind `weft down`'s back.
    let restarted = std::fs::read_to_string(net.path().join("nodes/peer0.org1.example.com/pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .filter(|&pid| alive(pid));
    assert_eq!(restarted, None, "peer0.org1 was started again");
}

#[test]
fn three_organisations_two_channels_and_a_three_org_policy() {
    let net = Net::new();
    let spec = format!(
        "name: three-orgs\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{}]}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]}}\n\
         \x20 - {{name: Org3, mspId: Org3MSP, domain: org3.example.com, users: 2, ports: [{}]}}\n\
         orderers:\n\
         \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n\
         \x20 nodes: 1\n\
         \x20 ports: [{}]\n\
         channels:\n\
         \x20 - name: everyone\n\
         \x20 - name: pair\n\
         \x20   organizations: [Org1, Org3MSP]\n\
         chaincodes:\n\
         \x20 - name: assets\n\
         \x20   channels: [everyone]\n\
         \x20   endorsementPolicy: \"AND('Org1MSP.peer','Org2MSP.peer','Org3MSP.peer')\"\n\
         \x20   launcher: {{builtin: basic}}\n\
         \x20 - name: basic\n\
         \x20   channels: [pair]\n\
         \x20   launcher: {{builtin: basic}}\n",
        free_port(),
        free_port(),
        free_port(),
        free_port()
    );
    let spec = net.write_spec(&spec);
    net.ok(&["up", spec.to_str().expect("utf8")]);
    assert!(
        net.path()
            .join("organizations/peerOrganizations/org3.example.com/connection-org3.yaml")
            .is_file()
    );
    // Three endorsements gathered by Org3's gateway.
    net.ok(&[
        "chaincode",
        "invoke",
        "assets",
        "CreateAsset",
        "a1",
        "red",
        "1",
        "Ann",
        "10",
        "--org",
        "Org3",
        "--user",
        "User2",
    ]);
    let asset = net.ok(&[
        "chaincode",
        "query",
        "assets",
        "ReadAsset",
        "a1",
        "--org",
        "Org2",
    ]);
    assert!(asset.contains("\"Owner\":\"Ann\""), "{asset}");
    // The second channel has Org1 and Org3 only.
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "p1",
        "green",
        "2",
        "Bo",
        "20",
        "--org",
        "Org1",
    ]);
    let status = net.wait_healthy();
    let org2_line = status
        .lines()
        .find(|l| l.contains("peer0.org2.example.com"))
        .expect("org2 in status");
    assert!(
        org2_line.contains("everyone") && !org2_line.contains("pair"),
        "{status}"
    );
    let outsider = net.weft(&[
        "chaincode",
        "query",
        "basic",
        "ReadAsset",
        "p1",
        "--org",
        "Org2",
        "-C",
        "pair",
    ]);
    assert!(!outsider.status.success());
    let message = String::from_utf8_lossy(&outsider.stderr);
    assert!(message.contains("pair"), "{message}");
}

#[test]
fn an_interrupted_first_up_is_completed_by_the_next() {
    let net = Net::new();
    let spec = net.write_spec(&default_spec());
    let mut first = Command::new(WEFT)
        .args(["up", spec.to_str().expect("utf8"), "--dir"])
        .arg(net.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft up");
    let stderr = first.stderr.take().expect("stderr");
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("line");
        if line.contains("orderer.example.com: joined mychannel") {
            break;
        }
    }
    first.kill().expect("interrupt weft up");
    let _ = first.wait();
    let status = String::from_utf8_lossy(&net.weft(&["status"]).stdout).into_owned();
    eprintln!("after the interrupted run:\n{status}");

    net.ok(&["up"]);
    let status = net.wait_healthy();
    assert_eq!(status.matches("mychannel height").count(), 5, "{status}");
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "asset7",
        "red",
        "1",
        "Ann",
        "10",
    ]);
}

#[test]
fn broken_specs_are_refused_before_anything_starts() {
    let net = Net::new();
    let base = default_spec();
    let cases = [
        (
            base.replace("  - name: mychannel\n", "  - name: mychannel\n    organizations: [Org1, Org9]\n"),
            "channels[0].organizations[1]: no organisation named \"Org9\"",
        ),
        (
            base.replacen("ports: [", "ports: [1, ", 1),
            "organizations[0].ports: expected 1 port(s), one per peer, got 2",
        ),
        (
            base.replace(
                "    launcher: {builtin: basic}",
                "    endorsementPolicy: \"OR('Org1MSP.peer','Org7MSP.peer')\"\n    launcher: {builtin: basic}",
            ),
            "chaincodes[0].endorsementPolicy: principal of \"Org7MSP\" is not an organisation of channel \"mychannel\"",
        ),
        (
            base.replace("  nodes: 3\n", "  nodes: [3\n"),
            "line",
        ),
        (
            base.replace("{builtin: basic}", "{builtin: marbles}"),
            "chaincodes[0].launcher.builtin: no built-in chaincode \"marbles\"",
        ),
        (
            // Nodes placed on other machines are for `weft deploy compose`.
            base.replace("organizations:\n", "hosts: [{name: h1, address: 10.9.9.9}]\norganizations:\n")
                .replace("domain: org1.example.com, ", "domain: org1.example.com, hosts: [h1], ")
                .replace("domain: org2.example.com, ", "domain: org2.example.com, hosts: [h1], ")
                .replace("  nodes: 3\n", "  nodes: 3\n  hosts: [h1, h1, h1]\n"),
            "hosts: places nodes on other hosts; `weft up` runs a network on this one: use `weft deploy compose --per-host`",
        ),
    ];
    for (text, expected) in cases {
        let spec = net.write_spec(&text);
        let output = net.weft(&["up", spec.to_str().expect("utf8")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text}");
        assert!(
            stderr.contains(expected),
            "{stderr}\n  expected: {expected}"
        );
        assert!(
            !net.path().join("nodes").exists(),
            "nothing may be started for a broken spec"
        );
    }
    // Files the spec refers to are read before anything starts: the
    // README's own example spec without the files beside it, an index that
    // is not JSON, a collections file that is not Fabric's format, a
    // program that is not there, an image source that is not there.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let example = readme
        .split("## Your own network")
        .nth(1)
        .and_then(|rest| rest.split("```yaml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's example spec");
    let work = net.dir.path();
    std::fs::create_dir_all(work.join("chaincode/assets")).expect("dir");
    std::fs::create_dir_all(work.join("indexes")).expect("dir");
    let with_files = |index: &str, collections: &str| {
        std::fs::write(work.join("indexes/indexOwner.json"), index).expect("index");
        std::fs::write(work.join("collections_config.json"), collections).expect("collections");
    };
    let index = r#"{"index":{"fields":["owner"]},"ddoc":"indexOwnerDoc","name":"indexOwner","type":"json"}"#;
    let collections = r#"[{"name":"c1","policy":"OR('Org1MSP.member')","requiredPeerCount":0,"maxPeerCount":1,"blockToLive":0,"memberOnlyRead":true}]"#;
    let references = [
        (
            "not json",
            collections,
            example.to_owned(),
            "chaincodes[1].indexes[0]: ",
        ),
        (
            index,
            "[{]",
            example.to_owned(),
            "chaincodes[1].collectionsConfig: ",
        ),
        (
            index,
            collections,
            example.to_owned(),
            "chaincodes[2].launcher.external.tlsRootCa: ",
        ),
        (
            index,
            collections,
            example.replace("command: [npx,", "command: [no-such-program-here,"),
            "chaincodes[1].launcher.process.command[0]: \"no-such-program-here\": not found on PATH",
        ),
        (
            index,
            collections,
            example.replace(
                "launcher: { builtin: basic }",
                "launcher: {docker: {build: nowhere}}",
            ),
            "chaincodes[0].launcher.docker.build: ",
        ),
    ];
    for (index, collections, text, expected) in references {
        with_files(index, collections);
        let spec = net.write_spec(&text);
        for command in ["validate", "up"] {
            let output = if command == "validate" {
                validate(&spec)
            } else {
                net.weft(&["up", spec.to_str().expect("utf8")])
            };
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{command}: {text}");
            assert!(
                stderr.contains(expected),
                "{command}: {stderr}\n  expected: {expected}"
            );
        }
        assert!(
            !net.path().exists(),
            "nothing may be written for a spec whose files are missing"
        );
    }
    // With its files, the README's example validates and shows the network.
    with_files(index, collections);
    std::fs::create_dir_all(work.join("certs")).expect("dir");
    let ca = rcgen::CertificateParams::new(vec!["ca".to_owned()])
        .and_then(|params| params.self_signed(&rcgen::KeyPair::generate()?))
        .expect("certificate");
    std::fs::write(work.join("certs/ca.pem"), ca.pem()).expect("ca.pem");
    let spec = net.write_spec(example);
    let output = validate(&spec);
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "network my-network: valid",
        "  peer1.org1.example.com       127.0.0.1:7151 (Org1MSP)",
        "  private: Org1MSP",
        "  basic 1.0 on mychannel: built-in basic; endorsement OR('Org1MSP.peer','Org2MSP.peer')",
        "  remote 1.0 on mychannel, private: service at 127.0.0.1:9999",
    ] {
        assert!(shown.contains(line), "{line:?} in:\n{shown}");
    }
    // A duplicate port between two nodes names both.
    let port = free_port();
    let spec = net.write_spec(&spec_on_ports(port, port));
    let output = net.weft(&["up", spec.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "organizations[1].ports[0]: port {port} of peer0.org2.example.com is already used by peer0.org1.example.com"
        )),
        "{stderr}"
    );
}

/// `weft validate SPEC`, run beside the spec.
fn validate(spec: &Path) -> Output {
    Command::new(WEFT)
        .arg("validate")
        .arg(spec)
        .stdin(Stdio::null())
        .output()
        .expect("run weft validate")
}

/// The README's Node snippet, unchanged but for the peer's port, run with the
/// official client against a network `weft up` created.
#[test]
fn the_readme_node_application_runs_against_weft_up() {
    let packages = weft_compat::node_packages().expect("npm packages (compat/install.sh)");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let snippet = readme
        .split("```js\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a js block in the README");
    assert!(snippet.contains("localhost:7051"), "{snippet}");
    let net = Net::new();
    let port = free_port();
    let spec = net.write_spec(&spec_on_ports(port, free_port()));
    net.ok(&["up", spec.to_str().expect("utf8")]);
    let app = net.dir.path().join("app.mjs");
    std::fs::write(
        &app,
        snippet.replace("localhost:7051", &format!("localhost:{port}")),
    )
    .expect("app");
    std::os::unix::fs::symlink(
        packages.join("node_modules"),
        net.dir.path().join("node_modules"),
    )
    .expect("link node_modules");
    let output = weft_compat::run(
        Command::new("node")
            .arg(&app)
            .current_dir(net.dir.path())
            .stdin(Stdio::null()),
    )
    .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(r#""ID":"asset2""#) && stdout.contains(r#""Owner":"Ann""#),
        "{stdout}"
    );
}

/// A port of the network already taken by another program: `weft up` says
/// which node and port before writing or starting anything (it used to
/// start, and its clients talked to whatever listened there).
#[test]
fn a_port_in_use_is_named_before_anything_starts() {
    let net = Net::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let spec = net.write_spec(&spec_on_ports(port, free_port()));
    let output = net.weft(&["up", spec.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "peer0.org1.example.com: its port, 127.0.0.1:{port}, is in use by another program"
        )),
        "{stderr}"
    );
    assert!(!net.path().exists(), "nothing may be written");
}

/// `signatureAlgorithm: ed25519`: every signing identity is Ed25519 (TLS stays
/// P-256); the network comes up (orderers sign blocks, peers endorse, the
/// lifecycle deploys), `weft chaincode` submits, and the official Node
/// Fabric Gateway client signs with the Ed25519 key, as on Fabric 3.
#[test]
fn an_ed25519_network_runs_and_the_node_gateway_client_signs_with_ed25519() {
    let packages = weft_compat::node_packages().expect("npm packages (compat/install.sh)");
    let net = Net::new();
    let port = free_port();
    let spec = spec_on_ports(port, free_port()).replace(
        "name: default-on-free-ports\n",
        "name: default-on-free-ports\nsignatureAlgorithm: ed25519\n",
    );
    let spec = net.write_spec(&spec);
    net.ok(&["up", spec.to_str().expect("utf8")]);
    let org = net
        .path()
        .join("organizations/peerOrganizations/org1.example.com");
    let user = org.join("users/User1@org1.example.com/msp");
    let cert = std::fs::read_to_string(user.join("signcerts/cert.pem")).expect("cert");
    let der = weft_crypto::pem::certificates(cert.as_bytes()).expect("pem");
    assert!(
        der[0]
            .windows(5)
            .any(|w| w == [0x06, 0x03, 0x2b, 0x65, 0x70]),
        "the identity's key is Ed25519 (OID 1.3.101.112)"
    );
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "e1",
        "red",
        "1",
        "Ed",
        "5",
    ]);
    let output = weft_compat::run(
        Command::new("node")
            .arg(packages.join("node/gateway-app.mjs"))
            .arg(format!("127.0.0.1:{port}"))
            .arg(org.join("tlsca/tlsca.org1.example.com-cert.pem"))
            .arg(user.join("signcerts/cert.pem"))
            .arg(user.join("keystore/priv_sk"))
            .arg("Org1MSP")
            .arg("basic")
            .arg("events")
            .current_dir(&packages),
    )
    .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(report.get("unexpected").is_none(), "{report:#}");
    assert_eq!(report["transferStatus"]["successful"], true, "{report:#}");
    assert_eq!(report["readAfterTransfer"]["Owner"], "Brad", "{report:#}");
}

/// Rust chaincode built with weft-shim as its own process: launched by each
/// peer in classic mode (`weft chaincode run`), and as a service over TLS
/// (`weft chaincode serve`), declared in the spec like any Fabric chaincode.
/// A chaincode service that cannot be reached makes the peer's /healthz fail
/// (component `chaincode`) until it registers.
#[test]
fn rust_chaincode_runs_as_a_process_and_as_a_tls_service() {
    let net = Net::new();
    let service_port = free_port();
    let env_port = free_port();
    let org2_operations = free_port();
    let tls = "weft-network/organizations/peerOrganizations/org1.example.com";
    let spec = spec_on_ports(free_port(), free_port())
        .replacen(
            "domain: org2.example.com, ",
            &format!("domain: org2.example.com, operationsPorts: [{org2_operations}], "),
            1,
        )
        .replace(
        "chaincodes:\n",
        &format!(
            "chaincodes:\n\
             \x20 - name: classic\n\
             \x20   launcher:\n\
             \x20     process:\n\
             \x20       command: [{WEFT:?}, chaincode, run, basic, --peer.address, \"{{peer_address}}\"]\n\
             \x20 - name: served\n\
             \x20   endorsementPolicy: \"OR('Org1MSP.peer','Org2MSP.peer')\"\n\
             \x20   launcher:\n\
             \x20     external:\n\
             \x20       address: 127.0.0.1:{service_port}\n\
             \x20       tlsRootCa: {tls}/tlsca/tlsca.org1.example.com-cert.pem\n\
             \x20 - name: started\n\
             \x20   launcher:\n\
             \x20     external:\n\
             \x20       address: 127.0.0.1:{env_port}\n\
             \x20       tlsRootCa: {tls}/tlsca/tlsca.org1.example.com-cert.pem\n"
        ),
    );
    let spec = net.write_spec(&spec);
    net.ok(&["up", spec.to_str().expect("utf8")]);

    // Nothing listens for `served` yet: the invoke fails, and so does the
    // health of the peer that tried to reach it.
    let health = format!("127.0.0.1:{org2_operations}");
    assert_eq!(http(&health, "GET", "/healthz", "").0, 200);
    let failed = net.weft(&[
        "chaincode",
        "invoke",
        "served",
        "CreateAsset",
        "x0",
        "teal",
        "3",
        "served",
        "30",
        "--org",
        "Org2",
    ]);
    assert!(!failed.status.success());
    let (code, body) = http(&health, "GET", "/healthz", "");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("\"component\":\"chaincode\"")
            && body.contains("served")
            && body.contains(&format!(
                "cannot reach chaincode server 127.0.0.1:{service_port}"
            )),
        "{body}"
    );

    let node_tls = net
        .path()
        .join("organizations/peerOrganizations/org1.example.com/peers/peer0.org1.example.com/tls");
    let server = Command::new(WEFT)
        .args(["chaincode", "serve", "basic", "--chaincode-id", "served"])
        .arg("--chaincode-address")
        .arg(format!("127.0.0.1:{service_port}"))
        .arg("--tls-cert")
        .arg(node_tls.join("server.crt"))
        .arg("--tls-key")
        .arg(node_tls.join("server.key"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weft chaincode serve");
    // The same as a standalone binary started the way Fabric's shims are,
    // from CHAINCODE_* variables (weft_shim_host::start).
    let started = Command::new(WEFT)
        .args(["chaincode", "run", "basic"])
        .env("CHAINCODE_SERVER_ADDRESS", format!("127.0.0.1:{env_port}"))
        .env("CHAINCODE_ID", "started")
        .env("CHAINCODE_TLS_CERT", node_tls.join("server.crt"))
        .env("CHAINCODE_TLS_KEY", node_tls.join("server.key"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weft chaincode run as a service");
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [service_port, env_port] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chaincode server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    for (chaincode, org) in [("classic", "Org1"), ("served", "Org2"), ("started", "Org1")] {
        if chaincode == "started" {
            // `served` registered with the peer that could not reach it.
            let (code, body) = http(&health, "GET", "/healthz", "");
            assert_eq!(code, 200, "{body}");
        }
        net.ok(&[
            "chaincode",
            "invoke",
            chaincode,
            "CreateAsset",
            "x1",
            "teal",
            "3",
            chaincode,
            "30",
            "--org",
            org,
        ]);
        let asset = net.ok(&[
            "chaincode",
            "query",
            chaincode,
            "ReadAsset",
            "x1",
            "--org",
            "Org1",
        ]);
        assert!(
            asset.contains(&format!("\"Owner\":\"{chaincode}\"")),
            "{chaincode}: {asset}"
        );
    }
    // The classic chaincode is a process of its own, started by each peer.
    let log = net
        .path()
        .join("nodes/peer0.org1.example.com/data/chaincode/classic/chaincode.log");
    assert!(log.is_file(), "no chaincode log at {}", log.display());
    // It was given a TLS client certificate of its own, never the peer's key.
    let given = std::fs::read(log.with_file_name("client.key")).expect("the chaincode's key");
    let peer_key = std::fs::read(node_tls.join("server.key")).expect("the peer's key");
    assert_ne!(given, peer_key);
    let given_cert = std::fs::read_to_string(log.with_file_name("client.crt")).expect("cert");
    assert!(
        given_cert.starts_with("-----BEGIN CERTIFICATE-----"),
        "{given_cert}"
    );
    for mut process in [server, started] {
        let _ = process.kill();
        let _ = process.wait();
    }
}

#[test]
fn channels_and_chaincodes_are_added_to_a_running_network() {
    let net = Net::new();
    let spec = one_orderer_spec("growing");
    let spec = net.write_spec(&spec);
    let spec = spec.to_str().expect("utf8");
    net.ok(&["up", spec]);

    // A channel of Org1 alone; basic (meant for every channel) comes with it.
    let (out, progress) = net.ok_with_progress(&["channel", "create", "solo", "--org", "Org1"]);
    assert!(out.contains("channel solo created"), "{out}");
    assert!(
        progress.contains("peer0.org1.example.com: joined solo"),
        "{progress}"
    );
    assert!(
        !progress.contains("peer0.org2.example.com: joined solo"),
        "{progress}"
    );
    assert!(
        progress.contains("basic solo: definition committed"),
        "{progress}"
    );
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "s1",
        "blue",
        "1",
        "Ann",
        "5",
        "-C",
        "solo",
    ]);
    let read = net.ok(&[
        "chaincode",
        "query",
        "basic",
        "ReadAsset",
        "s1",
        "-C",
        "solo",
    ]);
    assert!(read.contains(r#""ID":"s1""#), "{read}");
    // mychannel is untouched.
    let missing = net.weft(&[
        "chaincode",
        "query",
        "basic",
        "ReadAsset",
        "s1",
        "-C",
        "mychannel",
    ]);
    assert!(!missing.status.success());

    let again = net.weft(&["channel", "create", "solo"]);
    assert!(!again.status.success());
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(
        message.contains("channel solo already exists in this network"),
        "{message}"
    );
    let bad_org = net.weft(&["channel", "create", "other", "--org", "Org9"]);
    let message = String::from_utf8_lossy(&bad_org.stderr);
    assert!(message.contains("Org9"), "{message}");
    assert!(!net.path().join("channel-artifacts/other.block").exists());

    let joined = net.ok(&["channel", "join", "solo"]);
    assert!(
        joined.contains("peer0.org1.example.com: already joined solo"),
        "{joined}"
    );
    let outsider = net.weft(&[
        "channel",
        "join",
        "solo",
        "--peer",
        "peer0.org2.example.com",
    ]);
    let message = String::from_utf8_lossy(&outsider.stderr);
    assert!(
        message.contains("Org2MSP, which is not a member of channel solo"),
        "{message}"
    );

    // A new chaincode on mychannel, endorsed by either org.
    let (out, progress) = net.ok_with_progress(&[
        "chaincode",
        "deploy",
        "ledger2",
        "--builtin",
        "basic",
        "-C",
        "mychannel",
        "--signature-policy",
        "OR('Org1MSP.peer','Org2MSP.peer')",
    ]);
    assert!(
        out.contains("chaincode ledger2 on mychannel: deployed (version 1.0, sequence 1)"),
        "{out}"
    );
    assert!(
        progress.contains("ledger2 mychannel: definition committed (version 1.0, sequence 1"),
        "{progress}"
    );
    net.ok(&[
        "chaincode",
        "invoke",
        "ledger2",
        "CreateAsset",
        "l1",
        "red",
        "2",
        "Bo",
        "7",
        "--org",
        "Org2",
    ]);
    let read = net.ok(&[
        "chaincode",
        "query",
        "ledger2",
        "ReadAsset",
        "l1",
        "--org",
        "Org1",
    ]);
    assert!(read.contains(r#""Owner":"Bo""#), "{read}");
    // Deployed again with a new version: the next sequence, and what the
    // command did not give (the policy, the channel) is kept.
    let upgrade = [
        "chaincode",
        "deploy",
        "ledger2",
        "--builtin",
        "basic",
        "-v",
        "2.0",
    ];
    let (out, progress) = net.ok_with_progress(&upgrade);
    assert!(
        out.contains("chaincode ledger2: version 1.0 → 2.0\n"),
        "{out}"
    );
    assert!(
        out.contains("chaincode ledger2 on mychannel: upgraded: sequence 1 → 2, version 1.0 → 2.0"),
        "{out}"
    );
    assert!(!out.contains(" on solo"), "the channel is kept: {out}");
    assert!(progress.contains("sequence 2"), "{progress}");
    let stored = std::fs::read_to_string(net.path().join("network.yaml")).expect("spec");
    let ledger2 = &stored[stored.find("name: ledger2").expect("ledger2")..];
    assert!(
        ledger2.contains("OR('Org1MSP.peer','Org2MSP.peer')"),
        "the policy is kept: {stored}"
    );
    let (out, _) = net.ok_with_progress(&upgrade);
    assert!(
        out.contains("chaincode ledger2 on mychannel: unchanged (version 2.0, sequence 2)"),
        "{out}"
    );
    // A deploy the network refuses (a collection policy naming an
    // organisation outside the channel passes the file check, and fails at
    // approval) is not kept in the stored spec.
    let outside = net.dir.path().join("outside.json");
    std::fs::write(
        &outside,
        r#"[{"name":"c","policy":"OR('Org9MSP.member')","requiredPeerCount":0,"maxPeerCount":1,"blockToLive":0}]"#,
    )
    .expect("collections");
    let before = std::fs::read_to_string(net.path().join("network.yaml")).expect("spec");
    // A file named on the command line that is not there: refused by its flag.
    let missing = net.weft(&[
        "chaincode",
        "deploy",
        "assets",
        "--address",
        "127.0.0.1:9",
        "--tls-root-ca",
        "missing-ca.pem",
    ]);
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(
        message.contains("--tls-root-ca") && message.contains("missing-ca.pem: No such file"),
        "{message}"
    );
    let refused = net.weft(&[
        "chaincode",
        "deploy",
        "refused",
        "--builtin",
        "basic",
        "-C",
        "mychannel",
        "--collections-config",
        outside.to_str().expect("utf8"),
        "--timeout",
        "20",
    ]);
    assert!(
        !refused.status.success(),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("run the same command again"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(net.path().join("network.yaml")).expect("spec"),
        before,
        "a failed deploy leaves the stored spec as it was: {}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The peers restarted for those deploys were planned restarts: started
    // again at once, never through the crash back-off.
    let supervisor = std::fs::read_to_string(net.path().join("supervisor.log")).expect("log");
    assert!(supervisor.contains("stopped for a restart"), "{supervisor}");
    assert!(!supervisor.contains("restarting in"), "{supervisor}");
    let read = net.ok(&["chaincode", "query", "ledger2", "ReadAsset", "l1"]);
    assert!(
        read.contains(r#""Owner":"Bo""#),
        "the upgrade keeps the data: {read}"
    );

    // A classic-mode process each peer starts: weft itself running basic.
    let (out, _) = net.ok_with_progress(&[
        "chaincode",
        "deploy",
        "proc",
        "-C",
        "solo",
        "--",
        WEFT,
        "chaincode",
        "run",
        "basic",
        "--peer.address",
        "{peer_address}",
    ]);
    assert!(
        out.contains("chaincode proc on solo: deployed (version 1.0, sequence 1)"),
        "{out}"
    );
    net.ok(&["chaincode", "invoke", "proc", "InitLedger", "-C", "solo"]);
    let all = net.ok(&["chaincode", "query", "proc", "GetAllAssets", "-C", "solo"]);
    assert!(all.contains("asset6"), "{all}");

    // A command that exits at once fails the transaction with its exit
    // status and log (not a registration timeout).
    net.ok(&[
        "chaincode",
        "deploy",
        "broken",
        "-C",
        "solo",
        "--",
        WEFT,
        "chaincode",
        "run",
    ]);
    let failed = net.weft(&["chaincode", "invoke", "broken", "InitLedger", "-C", "solo"]);
    assert!(!failed.status.success());
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(
        message.contains("exited (exit status: 2) before registering"),
        "{message}"
    );
    assert!(message.contains("Usage: weft chaincode run"), "{message}");

    let unknown = net.weft(&["chaincode", "deploy", "x", "--builtin", "nope"]);
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains("no built-in chaincode \"nope\""),
        "{message}"
    );
    let no_launcher = net.weft(&["chaincode", "deploy", "x"]);
    let message = String::from_utf8_lossy(&no_launcher.stderr);
    assert!(message.contains("say how the chaincode runs"), "{message}");

    // weft up without a spec keeps what the commands added; the original
    // file, which lacks the new channel, is refused rather than obeyed.
    let (_, progress) = net.ok_with_progress(&["up"]);
    assert!(
        progress.contains("basic solo: already defined"),
        "{progress}"
    );
    assert!(
        progress.contains("ledger2 mychannel: already defined (version 2.0, sequence 2)"),
        "{progress}"
    );
    let stale = net.weft(&["up", spec]);
    assert!(!stale.status.success());
    let message = String::from_utf8_lossy(&stale.stderr);
    assert!(
        message.contains(r#"lacks channel "solo", which exists"#),
        "{message}"
    );
}

/// `weft bench` against a small network: the JSON report is produced and
/// adds up (not a speed test: the numbers only have to be sane).
#[test]
fn bench_reports_submit_evaluate_and_conflicts() {
    let net = Net::new();
    let spec = one_orderer_spec("bench");
    let spec = net.write_spec(&spec);
    net.ok(&["up", spec.to_str().expect("utf8")]);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = net.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };

    let submit = json(&[
        "bench",
        "submit",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--concurrency",
        "8",
        "--json",
    ]);
    let committed = submit["committed"].as_u64().expect("committed");
    assert!(committed > 0, "{submit}");
    assert!(submit["tps"].as_f64().expect("tps") > 0.0, "{submit}");
    assert_eq!(submit["submitted"], committed, "{submit}");
    assert_eq!(submit["submit_errors"], 0, "{submit}");
    let latency = &submit["latency"];
    for phase in ["submit", "endorse", "order", "commit"] {
        let p = &latency[phase];
        assert_eq!(p["count"], committed, "{phase}: {submit}");
        let (p50, p99, max) = (
            p["p50_ms"].as_f64(),
            p["p99_ms"].as_f64(),
            p["max_ms"].as_f64(),
        );
        assert!(
            p50 > Some(0.0) && p50 <= p99 && p99 <= max,
            "{phase}: {submit}"
        );
    }
    assert!(
        latency["endorse"]["p50_ms"].as_f64() < latency["submit"]["p50_ms"].as_f64(),
        "a phase is part of the whole: {submit}"
    );
    assert!(
        submit["client_cpu"]["us_per_request"].as_f64() > Some(0.0),
        "{submit}"
    );
    // The network's own processes are measured too: every node, by name,
    // and the peers did work for the transactions.
    let servers = &submit["server_cpu"];
    let processes = servers["processes"].as_array().expect("server processes");
    let names: Vec<&str> = processes
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "orderer.example.com",
            "peer0.org1.example.com",
            "peer0.org2.example.com"
        ],
        "{submit}"
    );
    let peer_seconds = processes[1]["seconds"].as_f64().expect("seconds");
    assert!(peer_seconds > 0.0, "{submit}");
    assert!(
        servers["seconds"].as_f64() >= Some(peer_seconds)
            && servers["ms_per_request"].as_f64() > Some(0.0),
        "{submit}"
    );
    // And their memory: each node's RSS at the start and its peak during
    // the measurement (the nodes run as this user, so their peaks reset).
    let memory = submit["server_memory"]["processes"]
        .as_array()
        .expect("server memory");
    assert_eq!(memory.len(), 3, "{submit}");
    for node in memory {
        let (start, peak) = (
            node["start_rss_mib"].as_f64(),
            node["peak_rss_mib"].as_f64(),
        );
        assert!(start > Some(1.0) && peak >= start, "{submit}");
        assert_eq!(node["peak_since"], "measurement start", "{submit}");
    }

    // Open loop: a fixed rate, whatever the answers.
    let open = json(&[
        "bench", "submit", "--rate", "50", "--count", "20", "--warmup", "0s", "--json",
    ]);
    assert_eq!(open["load"]["kind"], "open", "{open}");
    assert_eq!(open["submitted"], 20, "{open}");
    assert_eq!(open["committed"], 20, "{open}");

    // One hot key, updated concurrently: conflicts are counted apart from
    // errors. With two endorsing orgs the only errors possible are
    // endorsements that read different versions (one peer had committed the
    // key's last update, the other not yet), which Fabric's gateway also
    // refuses as "ProposalResponsePayloads do not match".
    let hot = json(&[
        "bench",
        "submit",
        "--workload",
        "hot",
        "--keys",
        "1",
        "--count",
        "40",
        "--warmup",
        "0s",
        "--concurrency",
        "8",
        "--json",
    ]);
    assert_eq!(hot["submitted"], 40, "{hot}");
    let count = |field: &str| {
        hot[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {hot}"))
    };
    let (ok, conflicts, errors) = (
        count("committed"),
        count("mvcc_conflicts"),
        count("submit_errors"),
    );
    assert_eq!(ok + conflicts + errors, 40, "{hot}");
    assert!(ok > 0 && conflicts > 0, "{hot}");
    let listed = hot["errors"].as_array().expect("errors");
    let mismatches: u64 = listed
        .iter()
        .map(|e| {
            let message = e["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("ProposalResponsePayloads do not match"),
                "{hot}"
            );
            e["count"].as_u64().unwrap_or_default()
        })
        .sum();
    assert_eq!(mismatches, errors, "{hot}");

    // Evaluations through a connection profile and an MSP directory, as
    // against any Fabric peer; the HTML report is written.
    let org1 = net
        .path()
        .join("organizations/peerOrganizations/org1.example.com");
    let report = net.dir.path().join("report.html");
    let profile = org1.join("connection-org1.json");
    let msp = org1.join("users/User1@org1.example.com/msp");
    let evaluate = json(&[
        "bench",
        "evaluate",
        "--count",
        "30",
        "--warmup",
        "0s",
        "--keys",
        "5",
        "--profile",
        profile.to_str().expect("utf8"),
        "--msp-dir",
        msp.to_str().expect("utf8"),
        "--mspid",
        "Org1MSP",
        "--json",
        "--report",
        "html",
        "--report-file",
        report.to_str().expect("utf8"),
    ]);
    assert_eq!(evaluate["evaluated"], 30, "{evaluate}");
    assert_eq!(evaluate["evaluate_errors"], 0, "{evaluate}");
    assert_eq!(
        evaluate["tps"], evaluate["evaluations_per_second"],
        "{evaluate}"
    );
    let html = std::fs::read_to_string(&report).expect("report");
    assert!(
        html.contains("<svg") && html.contains("weft bench evaluate"),
        "{html}"
    );

    let mixed = net.ok(&[
        "bench",
        "mixed",
        "--count",
        "20",
        "--warmup",
        "0s",
        "--read-ratio",
        "0.5",
    ]);
    assert!(
        mixed.contains("weft bench mixed") && mixed.contains("latency (ms)"),
        "{mixed}"
    );
    let bad = net.weft(&["bench", "submit", "--workload", "bulk"]);
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(message.contains("unknown workload \"bulk\""), "{message}");
}

/// Hyperledger Caliper 0.6 (peer-gateway connector, installed by
/// benches/caliper/run.sh from the lock file) runs its smoke scenario
/// against a `weft up` network: every transaction succeeds and the HTML
/// report is written.
#[test]
fn the_caliper_smoke_scenario_runs_against_weft_up() {
    let net = Net::new();
    let spec = net.write_spec(&default_spec());
    net.ok(&["up", spec.to_str().expect("utf8")]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/caliper/run.sh");
    let report = net.dir.path().join("caliper-report.html");
    let output = Command::new(&script)
        .arg(net.path())
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .expect("run benches/caliper/run.sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} ")))
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no {name} row:\n{stdout}"))
    };
    for name in ["create", "read"] {
        let cells = row(name);
        assert_eq!((cells[2], cells[3]), ("40", "0"), "{name}: {stdout}");
    }
    let html = std::fs::read_to_string(&report).expect("Caliper's report");
    assert!(html.contains("create") && html.contains("read"), "{html}");
}

/// The default network on free ports, with operations services on
/// `operations` (peer0.org1, peer0.org2, then the three Raft nodes).
fn spec_with_operations(operations: &[u16]) -> String {
    default_spec()
        .replacen(
            "domain: org1.example.com, ",
            &format!(
                "domain: org1.example.com, operationsPorts: [{}], ",
                operations[0]
            ),
            1,
        )
        .replacen(
            "domain: org2.example.com, ",
            &format!(
                "domain: org2.example.com, operationsPorts: [{}], ",
                operations[1]
            ),
            1,
        )
        .replacen(
            "  nodes: 3\n",
            &format!(
                "  nodes: 3\n  operationsPorts: [{}, {}, {}]\n",
                operations[2], operations[3], operations[4]
            ),
            1,
        )
}

/// A plain HTTP/1.1 request to a node's operations service: (status, body).
fn http(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to operations");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Every node of a `weft up` network serves Fabric's operations endpoints:
/// health, version, the log spec changed at run time, and metrics under
/// Fabric's names that move as transactions commit.
#[test]
fn every_node_serves_fabrics_operations_endpoints() {
    let net = Net::new();
    let operations: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let spec = spec_with_operations(&operations);
    let spec = net.write_spec(&spec);
    let summary = net.ok(&["up", spec.to_str().expect("utf8")]);
    let peer = format!("127.0.0.1:{}", operations[0]);
    assert!(
        summary.contains(&format!("metrics http://{peer}/metrics")),
        "{summary}"
    );
    let status = net.ok(&["status"]);
    assert!(
        status.contains(&format!("operations http://{peer}")),
        "{status}"
    );

    for port in &operations {
        let address = format!("127.0.0.1:{port}");
        let (code, body) = http(&address, "GET", "/healthz", "");
        assert_eq!(code, 200, "{address}: {body}");
        assert!(body.contains("\"status\":\"OK\""), "{address}: {body}");
        let (code, body) = http(&address, "GET", "/version", "");
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"Version\""), "{body}");
    }

    // The log spec, changed at run time and refused when malformed.
    let (code, body) = http(&peer, "GET", "/logspec", "");
    assert_eq!(
        (code, body.as_str()),
        (200, "{\"spec\":\"info:openraft=warn\"}")
    );
    let (code, _) = http(
        &peer,
        "PUT",
        "/logspec",
        "{\"spec\":\"info:weft_peer=debug\"}",
    );
    assert_eq!(code, 204);
    let (_, body) = http(&peer, "GET", "/logspec", "");
    assert_eq!(body, "{\"spec\":\"info:weft_peer=debug\"}");
    let (code, body) = http(&peer, "PUT", "/logspec", "{\"spec\":\"weft_peer=loud\"}");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown log level \\\"loud\\\""), "{body}");

    // Metrics move as a transaction commits.
    let channel = "{channel=\"mychannel\"}";
    let before = http(&peer, "GET", "/metrics", "").1;
    let height = metric(&before, &format!("ledger_blockchain_height{channel}")).expect("height");
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "ops1",
        "blue",
        "5",
        "Tom",
        "100",
        "--org",
        "Org1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let text = http(&peer, "GET", "/metrics", "").1;
        if metric(&text, &format!("ledger_blockchain_height{channel}")) > Some(height) {
            break text;
        }
        assert!(Instant::now() < deadline, "the height never moved:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for series in [
        "ledger_transaction_count{channel=\"mychannel\",transaction_type=\"ENDORSER_TRANSACTION\",chaincode=\"basic\",validation_code=\"VALID\"}",
        "endorser_proposals_received",
        "endorser_successful_proposals",
        "gateway_requests_received{method=\"Submit\"}",
        "gateway_requests_completed{method=\"Submit\",success=\"true\"}",
        "ledger_block_processing_time_count{channel=\"mychannel\"}",
        "ledger_blockstorage_commit_time_count{channel=\"mychannel\"}",
        "ledger_statedb_commit_time_count{channel=\"mychannel\"}",
        "weft_ledger_block_validation_time_count{channel=\"mychannel\"}",
        "chaincode_shim_requests_received{type=\"PUT_STATE\",channel=\"mychannel\",chaincode=\"basic\"}",
        "chaincode_shim_requests_completed{type=\"PUT_STATE\",channel=\"mychannel\",chaincode=\"basic\",success=\"true\"}",
        "grpc_server_unary_requests_received{service=\"gateway_Gateway\",method=\"Submit\"}",
        "grpc_server_unary_requests_completed{service=\"gateway_Gateway\",method=\"Submit\",code=\"OK\"}",
        "grpc_server_unary_request_duration_count{service=\"gateway_Gateway\",method=\"Endorse\",code=\"OK\"}",
        "process_resident_memory_bytes",
        "process_max_fds",
        "weft_data_dir_bytes",
        "weft_data_dir_filesystem_avail_bytes",
        "weft_signature_cache_hits{channel=\"mychannel\"}",
        "weft_signature_cache_misses{channel=\"mychannel\"}",
    ] {
        let value = metric(&after, series).unwrap_or_else(|| panic!("{series}:\n{after}"));
        assert!(value >= 1.0, "{series} = {value}");
    }
    assert!(
        after.contains("# TYPE endorser_proposals_received counter"),
        "{after}"
    );

    // Exactly one Raft leader, a cluster of three, the transaction broadcast.
    let orderers: Vec<String> = operations[2..]
        .iter()
        .map(|port| http(&format!("127.0.0.1:{port}"), "GET", "/metrics", "").1)
        .collect();
    let leaders: f64 = orderers
        .iter()
        .map(|text| {
            metric(text, &format!("consensus_etcdraft_is_leader{channel}")).expect("is_leader")
        })
        .sum();
    assert_eq!(leaders, 1.0, "{orderers:?}");
    for text in &orderers {
        assert_eq!(
            metric(text, &format!("consensus_etcdraft_cluster_size{channel}")),
            Some(3.0)
        );
        assert!(metric(text, &format!("consensus_etcdraft_leader_changes{channel}")) >= Some(1.0));
        assert!(metric(text, &format!("ledger_blockchain_height{channel}")) > Some(height));
    }
    let broadcast: f64 = orderers
        .iter()
        .filter_map(|text| {
            metric(
                text,
                "broadcast_processed_count{channel=\"mychannel\",type=\"ENDORSER_TRANSACTION\",status=\"SUCCESS\"}",
            )
        })
        .sum();
    assert!(broadcast >= 1.0, "{orderers:?}");
    for series in [
        "broadcast_validate_duration_count{channel=\"mychannel\",type=\"ENDORSER_TRANSACTION\",status=\"SUCCESS\"}",
        "blockcutter_block_fill_duration_count{channel=\"mychannel\"}",
        "grpc_server_stream_requests_received{service=\"orderer_AtomicBroadcast\",method=\"Broadcast\"}",
        "grpc_server_stream_messages_received{service=\"orderer_AtomicBroadcast\",method=\"Broadcast\"}",
        "grpc_server_stream_messages_sent{service=\"orderer_AtomicBroadcast\",method=\"Deliver\"}",
        "weft_raft_log_entries{channel=\"mychannel\"}",
    ] {
        let total: f64 = orderers
            .iter()
            .filter_map(|text| metric(text, series))
            .sum();
        assert!(total >= 1.0, "{series}: {orderers:?}");
    }
    // Certificates: the node's TLS and enrolment certificates, years ahead.
    let peer_metrics = http(&peer, "GET", "/metrics", "").1;
    for certificate in ["tls", "enrollment"] {
        let line = peer_metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "weft_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\""
                ))
            })
            .unwrap_or_else(|| panic!("{certificate}:\n{peer_metrics}"));
        let expiry: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("value");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs_f64();
        assert!(expiry > now + 365.0 * 86_400.0, "{line}");
    }

    // With the leader and another Raft node frozen, the third (a follower)
    // has no leader: unhealthy.
    let names = [
        "orderer.example.com",
        "orderer2.example.com",
        "orderer3.example.com",
    ];
    let leader = orderers
        .iter()
        .position(|text| {
            metric(text, &format!("consensus_etcdraft_is_leader{channel}")) == Some(1.0)
        })
        .expect("a leader");
    let follower = (leader + 1) % 3;
    let frozen: Vec<u32> = (0..3)
        .filter(|i| *i != follower)
        .map(|i| net.pid(&format!("nodes/{}/pid", names[i])))
        .collect();
    let signal = |name: &str, pid: u32| {
        let status = Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    for pid in &frozen {
        signal("-STOP", *pid);
    }
    let survivor = format!("127.0.0.1:{}", operations[2 + follower]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let unhealthy = loop {
        let (code, body) = http(&survivor, "GET", "/healthz", "");
        if code == 503 {
            break body;
        }
        if Instant::now() > deadline {
            for pid in &frozen {
                signal("-CONT", *pid);
            }
            panic!("still healthy without a Raft leader: {body}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for pid in &frozen {
        signal("-CONT", *pid);
    }
    assert!(
        unhealthy.contains("\"component\":\"consensus\"")
            && unhealthy.contains("no Raft leader for channel(s) mychannel"),
        "{unhealthy}"
    );
}

/// Runs a Prometheus/Alertmanager tool; panics with its output on failure.
/// `text` as a URL query value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn tool(program: &str, args: &[&str], cwd: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program} (compat/install.sh installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{program} {args:?}:\n{text}");
    text
}

/// A Prometheus HTTP API query on loopback: the JSON answer.
fn prometheus_api(port: u16, path: &str) -> serde_json::Value {
    let (code, body) = weft_network::monitor::http_get(&format!("127.0.0.1:{port}"), path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// `weft monitor up` with the real Prometheus and Alertmanager on a network
/// whose operations ports speak HTTPS (`operations: {tls: true}`): a client
/// without a certificate gets /healthz but not /metrics; Prometheus scrapes
/// with the network's client certificate and every node is a target that
/// is up, metrics move as transactions commit, the generated
/// files pass promtool and amtool, the rules' unit tests pass, and a frozen
/// peer raises WeftNodeDown once (grouped) through Alertmanager to the log
/// receiver, resolved when it runs again.
#[test]
fn monitoring_scrapes_every_node_and_alerts_once_when_a_peer_freezes() {
    let net = Net::new();
    let operations: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let spec = net.write_spec(&format!(
        "{}operations:\n  tls: true\n",
        spec_with_operations(&operations)
    ));
    let up = net.ok(&["up", spec.to_str().expect("utf8")]);
    assert!(
        up.contains(&format!(
            "metrics https://127.0.0.1:{}/metrics",
            operations[0]
        )),
        "{up}"
    );
    let (prometheus, alertmanager, receiver) = (free_port(), free_port(), free_port());
    let ports = [prometheus, alertmanager, receiver].map(|p| p.to_string());
    struct Monitoring<'a>(&'a Net);
    impl Drop for Monitoring<'_> {
        fn drop(&mut self) {
            let _ = self.0.weft(&["monitor", "down"]);
        }
    }
    let up = net.ok(&[
        "monitor",
        "up",
        "--prometheus-port",
        &ports[0],
        "--alertmanager-port",
        &ports[1],
        "--receiver-port",
        &ports[2],
    ]);
    let _monitoring = Monitoring(&net);
    assert!(up.contains("monitoring is up"), "{up}");
    let files = net.path().join("monitoring");

    // HTTPS with the node's TLS certificate: /healthz for anyone, /metrics
    // only with a client certificate of one of the network's TLS CAs.
    let curl = |url: &str, identity: bool| -> String {
        let admin = net.path().join(
            "organizations/peerOrganizations/org1.example.com/users/Admin@org1.example.com/tls",
        );
        let mut args = vec![
            "-s".to_owned(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
            "--cacert".into(),
            files.join("tls/ca.pem").display().to_string(),
        ];
        if identity {
            for (flag, file) in [("--cert", "client.crt"), ("--key", "client.key")] {
                args.push(flag.into());
                args.push(admin.join(file).display().to_string());
            }
        }
        args.push(url.into());
        let output = Command::new("curl").args(&args).output().expect("curl");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let base = format!("https://127.0.0.1:{}", operations[0]);
    assert_eq!(curl(&format!("{base}/healthz"), false), "200");
    assert_eq!(curl(&format!("{base}/metrics"), false), "401");
    assert_eq!(curl(&format!("{base}/metrics"), true), "200");
    assert_eq!(
        curl(
            &format!("http://127.0.0.1:{}/healthz", operations[0]),
            false
        ),
        "000",
        "plain HTTP on an HTTPS operations port"
    );

    // What was generated passes Prometheus' and Alertmanager's own checks.
    tool("promtool", &["check", "config", "prometheus.yml"], &files);
    tool("promtool", &["check", "rules", "rules/weft.yml"], &files);
    tool("amtool", &["check-config", "alertmanager.yml"], &files);
    let rules_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../network/src/monitoring");
    tool(
        "promtool",
        &["test", "rules", "weft-rules.test.yml"],
        &rules_dir,
    );

    // Every node is a target, and up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let targets = prometheus_api(prometheus, "/api/v1/targets");
        let active = targets["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if active.len() == 5 && active.iter().all(|t| t["health"] == "up") {
            break;
        }
        assert!(Instant::now() < deadline, "targets never all up: {targets}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = net.ok(&["monitor", "status"]);
    assert!(status.contains("5/5 target(s) up"), "{status}");

    // The height, gateway and endorser metrics Prometheus sees move with a commit.
    let value = |query: &str| {
        let answer = prometheus_api(
            prometheus,
            &format!("/api/v1/query?query={}", url_encode(query)),
        );
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
    };
    let height = |node: &str| {
        value(&format!(
            "ledger_blockchain_height{{channel=\"mychannel\",node=\"{node}\"}}"
        ))
    };
    let moving = [
        "sum(gateway_requests_completed{method=\"Submit\",success=\"true\"}) or vector(0)",
        "sum(endorser_proposal_duration_count{channel=\"mychannel\",success=\"true\"}) or vector(0)",
    ];
    let counts_before: Vec<Option<f64>> = moving.iter().map(|q| value(q)).collect();
    let before = height("peer0.org1.example.com").expect("a height series");
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "mon1",
        "blue",
        "5",
        "Tom",
        "100",
        "--org",
        "Org1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while height("peer0.org1.example.com") <= Some(before) {
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the height move"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for (query, before) in moving.iter().zip(&counts_before) {
        while value(query) <= *before {
            assert!(
                Instant::now() < deadline,
                "{query} never moved from {before:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // The dashboards conform to Grafana's dashboard schema, and every panel
    // of each queries series weft exports ($channel and $node set to this
    // network's; a node panel may apply to peers or to orderers only).
    let compat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat");
    let dashboards: Vec<PathBuf> = ["weft-overview", "weft-channel", "weft-node"]
        .iter()
        .map(|name| files.join(format!("grafana/dashboards/{name}.json")))
        .collect();
    let mut check = vec!["check-grafana-dashboards.mjs"];
    check.extend(dashboards.iter().map(|d| d.to_str().expect("utf8")));
    let checked = tool("node", &check, &compat);
    assert!(checked.contains("3 dashboard(s) conform"), "{checked}");
    std::thread::sleep(Duration::from_secs(10)); // two scrapes more, for rates
    for path in &dashboards {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard"))
                .expect("dashboard JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 10, "{}", path.display());
        for panel in panels {
            let expr = panel["targets"][0]["expr"].as_str().expect("a query");
            let answers: Vec<serde_json::Value> = ["peer0.org1.example.com", "orderer.example.com"]
                .iter()
                .map(|node| {
                    let expr = expr.replace("$channel", "mychannel").replace("$node", node);
                    let answer = prometheus_api(
                        prometheus,
                        &format!("/api/v1/query?query={}", url_encode(&expr)),
                    );
                    assert_eq!(answer["status"], "success", "{expr}: {answer}");
                    answer
                })
                .collect();
            assert!(
                answers
                    .iter()
                    .any(|a| !a["data"]["result"].as_array().expect("result").is_empty()),
                "{} / {}: {expr} returns no series",
                path.display(),
                panel["title"]
            );
        }
    }

    // A monitoring process that dies is started again.
    let pid_path = files.join("prometheus.pid");
    let killed = std::fs::read_to_string(&pid_path)
        .expect("prometheus.pid")
        .trim()
        .to_owned();
    assert!(
        Command::new("kill")
            .args(["-9", &killed])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let restarted = std::fs::read_to_string(&pid_path).unwrap_or_default();
        if !restarted.trim().is_empty()
            && restarted.trim() != killed
            && weft_network::monitor::http_get(&format!("127.0.0.1:{prometheus}"), "/-/ready")
                .is_ok_and(|(code, _)| code == 200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus was not restarted:\n{}",
            std::fs::read_to_string(files.join("supervisor.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A frozen peer: one grouped notification, then resolved.
    let frozen = net.pid("nodes/peer0.org2.example.com/pid");
    let signal = |name: &str| {
        assert!(
            Command::new("kill")
                .args([name, &frozen.to_string()])
                .status()
                .expect("kill")
                .success()
        );
    };
    signal("-STOP");
    let log = files.join("alerts.log");
    let lines = |status: &str| -> usize {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains(&format!(" {status} "))
                    && l.contains("alertname=WeftNodeDown")
                    && l.contains("node=peer0.org2.example.com")
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(150);
    while lines("firing") == 0 {
        if Instant::now() > deadline {
            signal("-CONT");
            panic!(
                "no WeftNodeDown notification:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let status = net.ok(&["monitor", "status"]);
    assert!(status.contains("WeftNodeDown"), "{status}");
    signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(150);
    while lines("resolved") == 0 {
        assert!(
            Instant::now() < deadline,
            "never resolved:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        lines("firing"),
        1,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // `weft down` stops everything: the monitoring supervisor and its three
    // processes too.
    let pids: Vec<u32> = ["supervisor", "prometheus", "alertmanager", "receiver"]
        .iter()
        .map(|p| net.pid(&format!("monitoring/{p}.pid")))
        .collect();
    let (out, progress) = net.ok_with_progress(&["down"]);
    assert!(progress.contains("prometheus: stopped"), "{out}{progress}");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| stat.contains(") Z ")),
            "process {pid} still runs after monitor down"
        );
    }
}

/// A chaincode whose file vanished after `weft up` checked it (here the TLS
/// root of a chaincode service) does not keep its peer down: the peer
/// restarts and serves, and only that chaincode's transactions fail, naming
/// the file.
#[test]
fn a_chaincode_whose_files_vanish_does_not_take_its_peer_down() {
    let net = Net::new();
    let ca = rcgen::CertificateParams::new(vec!["ca".to_owned()])
        .and_then(|params| params.self_signed(&rcgen::KeyPair::generate()?))
        .expect("certificate");
    let ca_file = net.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca.pem");
    let spec = one_orderer_spec("vanishing").replace(
        "chaincodes:\n",
        &format!(
            "chaincodes:\n  - name: remote\n    launcher: {{external: {{address: '127.0.0.1:{}', tlsRootCa: ca.pem}}}}\n",
            free_port()
        ),
    );
    let spec = net.write_spec(&spec);
    net.ok(&["up", spec.to_str().expect("utf8")]);

    std::fs::remove_file(&ca_file).expect("remove ca.pem");
    let peer = net.pid("nodes/peer0.org1.example.com/pid");
    kill(peer);
    let deadline = Instant::now() + Duration::from_secs(30);
    let restarted = loop {
        let now = std::fs::read_to_string(net.path().join("nodes/peer0.org1.example.com/pid"))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(pid) = now.filter(|&pid| pid != peer && alive(pid)) {
            break pid;
        }
        assert!(Instant::now() < deadline, "peer0.org1 was not restarted");
        std::thread::sleep(Duration::from_millis(100));
    };
    net.wait_healthy();
    net.ok(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "v1",
        "red",
        "1",
        "Al",
        "2",
    ]);
    let failed = net.weft(&["chaincode", "query", "remote", "Anything"]);
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(message.contains("ca.pem"), "{message}");
    assert!(alive(restarted), "the peer stays up");
    let log = std::fs::read_to_string(net.path().join("nodes/peer0.org1.example.com/node.log"))
        .expect("log");
    assert!(
        log.contains("chaincode remote:") && log.contains("its transactions fail"),
        "{log}"
    );
}

/// `--transient`, as Fabric's CLI takes it: the private value reaches a
/// `fabric-contract-api` chaincode (`getTransient`) and its collection, and
/// never the blocks.
#[test]
fn transient_data_reaches_the_chaincode_and_not_the_ledger() {
    let compat = weft_compat::node_packages().expect("npm packages (compat/install.sh)");
    let net = Net::new();
    std::fs::write(
        net.dir.path().join("collections.json"),
        r#"[{"name":"shared","policy":"OR('Org1MSP.member','Org2MSP.member')","requiredPeerCount":0,"maxPeerCount":1,"blockToLive":0,"memberOnlyRead":true}]"#,
    )
    .expect("collections");
    let spec = one_orderer_spec("transient").replace(
        "chaincodes:\n",
        &format!(
            "chaincodes:\n\
             \x20 - name: assets\n\
             \x20   endorsementPolicy: \"OR('Org1MSP.peer','Org2MSP.peer')\"\n\
             \x20   collectionsConfig: collections.json\n\
             \x20   launcher:\n\
             \x20     process:\n\
             \x20       command: [{:?}, start, --peer.address, \"{{peer_address}}\"]\n\
             \x20       dir: {:?}\n",
            compat
                .join("node_modules/.bin/fabric-chaincode-node")
                .display()
                .to_string(),
            compat.join("node/chaincode").display().to_string(),
        ),
    );
    let spec = net.write_spec(&spec);
    net.ok(&["up", spec.to_str().expect("utf8")]);

    let secret = "secret-42-never-in-a-block";
    let encoded = weft_crypto::pem::base64(secret.as_bytes());
    net.ok(&[
        "chaincode",
        "invoke",
        "assets",
        "PutPrivate",
        "shared",
        "p1",
        "--transient",
        &format!(r#"{{"value":"{encoded}"}}"#),
    ]);
    let read = net.ok(&["chaincode", "query", "assets", "GetPrivate", "shared", "p1"]);
    assert_eq!(read.trim(), secret);
    let without = net.weft(&[
        "chaincode",
        "invoke",
        "assets",
        "PutPrivate",
        "shared",
        "p2",
    ]);
    assert!(
        String::from_utf8_lossy(&without.stderr)
            .contains("the transient field \"value\" is required"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    let bad = net.weft(&[
        "chaincode",
        "query",
        "assets",
        "GetPrivate",
        "shared",
        "p1",
        "--transient",
        "{\"value\": 1}",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("expected a JSON object of base64 strings"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // Every block of the channel, read through the peer: the value is in
    // none of them (only its hash is).
    let blocks: Vec<Vec<u8>> = support::network_blocks(&net.path(), "mychannel")
        .iter()
        .map(weft_protos::Message::encode_to_vec)
        .collect();
    assert!(blocks.len() > 3, "{} blocks", blocks.len());
    for block in &blocks {
        assert!(
            !block.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the transient value leaked into a block"
        );
    }
}

/// Nodes started under a low soft limit on open files raise it to the hard
/// limit, as Fabric's Go nodes do, and say so in their logs.
#[test]
fn nodes_raise_their_open_files_limit_to_the_hard_limit() {
    let net = Net::new();
    let spec = net.write_spec(&one_orderer_spec("files"));
    let output = Command::new("prlimit")
        .arg("--nofile=512:")
        .arg(WEFT)
        .args(["up", spec.to_str().expect("utf8"), "--dir"])
        .arg(net.path())
        .current_dir(net.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("prlimit (util-linux)");
    assert!(
        output.status.success(),
        "weft up under prlimit: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let supervisor = net.pid("supervisor.pid");
    let open_files = |pid: u32| -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files");
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|field| field.parse().ok())
            .collect();
        (numbers[0], numbers[1])
    };
    let (soft, hard) = open_files(supervisor);
    assert_eq!(soft, 512, "the supervisor keeps what it was given");
    for node in [
        "orderer.example.com",
        "peer0.org1.example.com",
        "peer0.org2.example.com",
    ] {
        let pid = net.pid(&format!("nodes/{node}/pid"));
        assert_eq!(open_files(pid), (hard, hard), "{node}");
        let log = std::fs::read_to_string(net.path().join(format!("nodes/{node}/node.log")))
            .expect("node log");
        assert!(
            log.contains(&format!("open files limit raised from 512 to {hard}")),
            "{node}: {log}"
        );
    }
    net.ok(&["down"]);
}
