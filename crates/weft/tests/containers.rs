//! weft in containers, against a real Docker engine: each test starts its
//! own `dockerd` (Debian's `docker.io`, which `compat/install.sh` installs)
//! on a private socket, data and exec root, with no bridge network and no
//! iptables changes, and stops it afterwards.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A Docker engine of the test's own.
struct Engine {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl Engine {
    /// Starts `dockerd`; None (after saying why) where the machine cannot
    /// run an engine at all (not root).
    fn start() -> Option<Engine> {
        if !support::is_root() {
            eprintln!("skipped: dockerd needs root, and these tests do not run as root");
            return None;
        }
        // Short: a unix socket path has at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("dk")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let root = dir.path();
        let log = std::fs::File::create(root.join("dockerd.log")).expect("log");
        let daemon = Command::new("dockerd")
            .arg("-H")
            .arg(format!("unix://{}", root.join("docker.sock").display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("dockerd (Debian docker.io; compat/install.sh installs it): {e}")
            });
        let engine = Engine { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer:\n{}",
                std::fs::read_to_string(engine.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        Some(engine)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .stdin(Stdio::null())
            .output()
            .expect("docker (the client)")
    }

    fn weft(&self, args: &[&str]) -> Output {
        Command::new(WEFT)
            .args(args)
            .env("DOCKER_HOST", self.host())
            .stdin(Stdio::null())
            .output()
            .expect("weft")
    }
}

impl Engine {
    /// `weft ARGS --dir DIR`.
    fn weft_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--dir", dir.to_str().expect("utf8")]);
        self.weft(&all)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.daemon.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Layers and the storage driver's own mounts stay under the data
        // and exec roots: the directory could not be removed with them.
        support::unmount_under(self.dir.path());
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `weft image build` builds an image `FROM scratch` that runs weft as a
/// non-root user able to write its working directory.
#[test]
fn the_weft_image_runs_weft_as_a_non_root_user() {
    let Some(engine) = Engine::start() else {
        return;
    };
    let built = engine.weft(&["image", "build", "--tag", "weft:test"]);
    assert!(built.status.success(), "{}", text(&built));
    let said = text(&built);
    assert!(said.contains("built weft:test (sha256:"), "{said}");

    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none", "weft:test"];
        all.extend_from_slice(args);
        engine.docker(&all)
    };
    let version = run(&["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("weft {}", env!("CARGO_PKG_VERSION"))
    );
    // Crypto material written into /var/weft by uid 10001.
    let cryptogen = run(&["cryptogen", "--output", "/var/weft/organizations"]);
    assert!(cryptogen.status.success(), "{}", text(&cryptogen));
    assert!(
        text(&cryptogen).contains("crypto material in /var/weft/organizations"),
        "{}",
        text(&cryptogen)
    );
    let inspected = engine.docker(&[
        "inspect",
        "-f",
        "{{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Labels \"org.opencontainers.image.version\"}}",
        "weft:test",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&inspected.stdout).trim(),
        format!("10001:10001 /var/weft {}", env!("CARGO_PKG_VERSION"))
    );
    // No shell, no package manager: the binary, its libraries, certificates.
    let shell = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        "weft:test",
        "-c",
        "true",
    ]);
    assert!(!shell.status.success());
    assert!(text(&shell).contains("/bin/sh"), "{}", text(&shell));
}

/// Without an engine, the error names the socket and what to do.
#[test]
fn without_an_engine_the_error_says_what_to_start() {
    let missing = PathBuf::from("/tmp/no-such-dir/docker.sock");
    let output = Command::new(WEFT)
        .args(["image", "build"])
        .env("DOCKER_HOST", format!("unix://{}", missing.display()))
        .stdin(Stdio::null())
        .output()
        .expect("weft");
    assert!(!output.status.success());
    let said = text(&output);
    assert!(
        said.contains("no Docker engine at /tmp/no-such-dir/docker.sock")
            && said.contains("start dockerd"),
        "{said}"
    );
    assert!(!Path::new("/tmp/no-such-dir").exists());
}

/// Lets containers on the compose network `network` talk to each other
/// while it lives. The test engine leaves iptables alone, and a host whose
/// FORWARD policy is DROP (as another Docker engine leaves it) with
/// bridge netfilter on would drop their traffic; the rule goes with it.
struct Forwarding {
    bridge: Option<String>,
}

impl Forwarding {
    fn allow(engine: &Engine, network: &str) -> Forwarding {
        let inspected = engine.docker(&["network", "inspect", "-f", "{{.Id}}", network]);
        assert!(inspected.status.success(), "{}", text(&inspected));
        let id = String::from_utf8_lossy(&inspected.stdout).trim().to_owned();
        let bridge = format!("br-{}", &id[..12]);
        let rule = |action: &str| {
            Command::new("iptables")
                .args([
                    action, "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
                ])
                .status()
                .is_ok_and(|s| s.success())
        };
        // No iptables (or no bridge netfilter): nothing filters the bridge.
        let inserted = rule("-I");
        Forwarding {
            bridge: inserted.then_some(bridge),
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(bridge) = &self.bridge {
            let _ = Command::new("iptables")
                .args(["-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"])
                .status();
        }
    }
}

/// Two organisations and one Raft orderer on free ports, peer0.org1 on
/// `peer`, with the `chaincodes` given (YAML list items); `operations`
/// gives every node an operations port.
fn two_org_spec(name: &str, peer: u16, operations: bool, chaincodes: &str) -> String {
    let operations_ports = || {
        if operations {
            format!(", operationsPorts: [{}]", free_port())
        } else {
            String::new()
        }
    };
    format!(
        "name: {name}\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{peer}]{}}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]{}}}\n\
         orderers: {{organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}, nodes: 1, ports: [{}]{}}}\n\
         chaincodes:\n{chaincodes}",
        operations_ports(),
        free_port(),
        operations_ports(),
        free_port(),
        operations_ports(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The compose project name written into `dir/.env`.
fn compose_project_name(dir: &Path) -> String {
    let env = std::fs::read_to_string(dir.join(".env")).expect(".env");
    env.lines()
        .find_map(|line| line.strip_prefix("COMPOSE_PROJECT_NAME="))
        .expect("COMPOSE_PROJECT_NAME")
        .to_owned()
}

/// A compose project on the test engine.
struct Project<'a> {
    engine: &'a Engine,
    dir: PathBuf,
    name: String,
}

impl Project<'_> {
    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", self.engine.host())
            .stdin(Stdio::null())
            .output()
            .expect("docker-compose (Debian docker-compose; compat/install.sh installs it)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.compose(args);
        assert!(
            output.status.success(),
            "docker-compose {args:?}: {}",
            text(&output)
        );
        text(&output)
    }

    /// Both validators pass: docker-compose's own, and the compose-spec
    /// schema (as docker-compose ships it).
    fn validate(&self) {
        self.ok(&["config", "-q"]);
        let schema = Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml, jsonschema\n\
                 schema = json.load(open('/usr/lib/python3/dist-packages/compose/config/compose_spec.json'))\n\
                 jsonschema.validate(yaml.safe_load(open(sys.argv[1])), schema)\n",
            ])
            .arg(self.dir.join("docker-compose.yaml"))
            .output()
            .expect("python3");
        assert!(schema.status.success(), "{}", text(&schema));
    }

    /// `up -d`, with the project's network open to its containers.
    fn up(&self) -> Forwarding {
        self.ok(&["up", "--no-start"]);
        let forwarding = Forwarding::allow(self.engine, &format!("{}_weft", self.name));
        self.ok(&["up", "-d"]);
        forwarding
    }

    /// Waits for the `init` service to finish; its log.
    fn init_done(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let id = self.ok(&["ps", "-q", "init"]);
            let id = id.trim();
            let state =
                self.engine
                    .docker(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id]);
            let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
            let log = text(&self.compose(&["logs", "--no-color", "init"]));
            if state == "exited 0" {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "init is {state:?}:\n{log}\n{}",
                text(&self.compose(&["logs", "--no-color", "--tail", "20"]))
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `weft deploy compose` writes a project that validates, runs the whole
/// network in containers of weft's image (the init service joins the
/// channel and deploys the built-in chaincode), serves the official Node
/// gateway client through the published ports, and keeps its ledgers
/// across `down` and `up`.
#[test]
fn a_compose_project_runs_the_network_and_keeps_its_ledgers() {
    let Some(engine) = Engine::start() else {
        return;
    };
    let built = engine.weft(&["image", "build", "--tag", "weft:test"]);
    assert!(built.status.success(), "{}", text(&built));
    let work = tempfile::tempdir().expect("temp dir");
    let peer = free_port();
    let spec = work.path().join("network.yaml");
    let spec_text = two_org_spec(
        "Compose-Test",
        peer,
        true,
        "  - name: basic\n    launcher: {builtin: basic}\n  - name: assets\n    launcher: {docker: {build: assets-cc}}\n",
    );
    std::fs::write(&spec, spec_text).expect("spec");
    node_chaincode_source(work.path());
    let output = work.path().join("project");
    let written = engine.weft(&[
        "deploy",
        "compose",
        spec.to_str().expect("utf8"),
        "--output",
        output.to_str().expect("utf8"),
        "--image",
        "weft:test",
    ]);
    assert!(written.status.success(), "{}", text(&written));
    let project = Project {
        engine: &engine,
        dir: output.clone(),
        name: compose_project_name(&output),
    };
    // The same spec written elsewhere is another network (other identities):
    // another project name, so the two never share ledger volumes; written
    // again into the same place, it keeps its name.
    let elsewhere = work.path().join("compose-elsewhere");
    for out in [&elsewhere, &output] {
        let again = engine.weft(&[
            "deploy",
            "compose",
            spec.to_str().expect("utf8"),
            "--output",
            out.to_str().expect("utf8"),
            "--image",
            "weft:test",
        ]);
        assert!(again.status.success(), "{}", text(&again));
    }
    assert!(
        project.name.starts_with("compose-test-"),
        "{}",
        project.name
    );
    assert_ne!(compose_project_name(&elsewhere), project.name);
    assert_eq!(compose_project_name(&output), project.name);

    project.validate();

    let forwarding = project.up();
    let init = project.init_done();
    assert!(
        init.contains("peer0.org2.example.com: joined mychannel")
            && init.contains("basic mychannel: definition committed"),
        "{init}"
    );
    // Nodes listen inside their containers under their own names and
    // reach each other by them; the host sees them on 127.0.0.1.
    // Every node's health check (its /healthz) passes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ps = project.ok(&["ps"]);
        if ps.matches("(healthy)").count() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{ps}");
        std::thread::sleep(Duration::from_secs(1));
    }

    // The official Node client, from the host, as User1 of Org1: the
    // built-in chaincode, and the Node one in its own container.
    let network = output.join("network");
    support::run_gateway_app(&network, peer, "basic");
    support::run_gateway_app(&network, peer, "assets");

    let weft_in = |args: &[&str]| engine.weft_in(&network, args);
    let invoked = weft_in(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "kept",
        "teal",
        "3",
        "Ann",
        "30",
    ]);
    assert!(invoked.status.success(), "{}", text(&invoked));

    // Down and up: the named volumes keep the ledgers; init finds
    // everything joined and deployed and changes nothing.
    project.ok(&["down"]);
    drop(forwarding);
    let volumes = engine.docker(&["volume", "ls", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&volumes.stdout)
            .matches(&format!("{}_", project.name))
            .count(),
        3,
        "{}",
        text(&volumes)
    );
    let _forwarding = project.up();
    let init = project.init_done();
    assert!(!init.contains("joined mychannel"), "{init}");
    let read = weft_in(&[
        "chaincode",
        "query",
        "--org",
        "Org2",
        "basic",
        "ReadAsset",
        "kept",
    ]);
    assert!(read.status.success(), "{}", text(&read));
    assert!(text(&read).contains(r#""Owner":"Ann""#), "{}", text(&read));
    let status = weft_in(&["status"]);
    assert!(
        text(&status).contains("3/3 node(s) healthy"),
        "{}",
        text(&status)
    );

    project.ok(&["down", "-v"]);
}

/// An address of this machine for one test "host", removed afterwards.
struct HostAddress(String);

impl HostAddress {
    fn add(address: String) -> HostAddress {
        let added = Command::new("ip")
            .args(["addr", "add", &format!("{address}/32"), "dev", "lo"])
            .output()
            .expect("ip (iproute2)");
        assert!(added.status.success(), "{}", text(&added));
        HostAddress(address)
    }
}

impl Drop for HostAddress {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"])
            .output();
    }
}

/// `weft deploy compose --per-host`: a network spread over two hosts, each
/// running only its own nodes in its own compose project. The hosts are
/// two addresses of this machine (in 198.18.0.0/15, the range set aside
/// for benchmarks); each project has its own container network, so the
/// hosts' nodes reach each other only through the ports published on the
/// other host's address, as between machines. A transaction endorsed by
/// peers on both hosts commits on every node.
#[test]
fn per_host_projects_spread_a_network_over_two_hosts() {
    let Some(engine) = Engine::start() else {
        return;
    };
    let built = engine.weft(&["image", "build", "--tag", "weft:test"]);
    assert!(built.status.success(), "{}", text(&built));
    let octet = std::process::id() % 200 + 20;
    let host1 = HostAddress::add(format!("198.18.{octet}.1"));
    let host2 = HostAddress::add(format!("198.18.{octet}.2"));
    let work = tempfile::tempdir().expect("temp dir");
    let spec = work.path().join("network.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: spread\n\
             hosts:\n\
             \x20 - {{name: host1, address: {}}}\n\
             \x20 - {{name: host2, address: {}}}\n\
             organizations:\n\
             \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, hosts: [host1], ports: [{}], operationsPorts: [{}]}}\n\
             \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, hosts: [host2], ports: [{}], operationsPorts: [{}]}}\n\
             orderers:\n\
             \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n\
             \x20 nodes: 1\n\
             \x20 hosts: [host1]\n\
             \x20 ports: [{}]\n\
             \x20 operationsPorts: [{}]\n\
             chaincodes:\n  - name: basic\n    launcher: {{builtin: basic}}\n",
            host1.0,
            host2.0,
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port()
        ),
    )
    .expect("spec");
    let output = work.path().join("out");
    let written = engine.weft(&[
        "deploy",
        "compose",
        spec.to_str().expect("utf8"),
        "--output",
        output.to_str().expect("utf8"),
        "--image",
        "weft:test",
        "--per-host",
    ]);
    assert!(written.status.success(), "{}", text(&written));
    let first = Project {
        engine: &engine,
        dir: output.join("host1"),
        name: compose_project_name(&output.join("host1")),
    };
    let second = Project {
        engine: &engine,
        dir: output.join("host2"),
        name: compose_project_name(&output.join("host2")),
    };
    first.validate();
    second.validate();
    // Each host runs only its own nodes, published on its own address.
    let file = std::fs::read_to_string(second.dir.join("docker-compose.yaml")).expect("host2");
    assert!(
        file.contains("peer0.org2.example.com:")
            && !file.contains("peer0.org1.example.com:")
            && !file.contains("orderer.example.com:")
            && !file.contains("  init:")
            && file.contains(&format!("\"{}:", host2.0)),
        "{file}"
    );

    let _forwarding2 = second.up();
    let _forwarding1 = first.up();
    let init = first.init_done();
    assert!(
        init.contains("peer0.org2.example.com: joined mychannel")
            && init.contains("basic mychannel: definition committed"),
        "{init}"
    );
    // From this machine, as an operator of the whole network.
    let network = output.join("network");
    let weft_in = |args: &[&str]| engine.weft_in(&network, args);
    // Endorsed by Org1's peer on host1 and Org2's on host2 (the channel's
    // default policy: a majority of both organisations).
    let invoked = weft_in(&[
        "chaincode",
        "invoke",
        "basic",
        "CreateAsset",
        "spread",
        "red",
        "1",
        "Ann",
        "10",
    ]);
    assert!(invoked.status.success(), "{}", text(&invoked));
    // The invoke waited for the commit on Org1's peer, its gateway; Org2's
    // peer, on the other host, commits the block a moment later.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = weft_in(&[
            "chaincode",
            "query",
            "--org",
            "Org2",
            "basic",
            "ReadAsset",
            "spread",
        ]);
        if text(&read).contains(r#""Owner":"Ann""#) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&read));
        std::thread::sleep(Duration::from_millis(250));
    }
    let status = weft_in(&["status"]);
    let said = text(&status);
    assert!(said.contains("3/3 node(s) healthy"), "{said}");
    // Every node at the same height: genesis, the approvals and the
    // commit (how many blocks those took depends on the cutting), and the
    // invoke.
    let heights: Vec<u64> = said
        .split("mychannel height ")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a height")
        })
        .collect();
    assert_eq!(heights.len(), 3, "{said}");
    assert!(heights.iter().all(|&h| h == heights[0] && h >= 4), "{said}");
    assert!(
        said.contains(&format!("{}:", host2.0)) && said.contains("elsewhere"),
        "{said}"
    );

    first.ok(&["down", "-v"]);
    second.ok(&["down", "-v"]);
}

/// Stops a `weft up` network when the test ends, pass or fail.
struct UpNetwork<'a> {
    engine: &'a Engine,
    dir: PathBuf,
}

impl UpNetwork<'_> {
    fn weft(&self, args: &[&str]) -> Output {
        self.engine.weft_in(&self.dir, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.weft(args);
        assert!(output.status.success(), "weft {args:?}: {}", text(&output));
        text(&output)
    }
}

impl Drop for UpNetwork<'_> {
    fn drop(&mut self) {
        let _ = self.weft(&["down"]);
    }
}

/// The Docker chaincode launcher: `weft up` runs a chaincode image as a
/// service on the local engine (here weft's own image serving its `basic`
/// contract), the peers dial it, the engine restarts it when it dies, a
/// second `weft up` keeps it, and `weft down` removes it.
#[test]
fn weft_up_runs_a_docker_chaincode_as_a_service() {
    let Some(engine) = Engine::start() else {
        return;
    };
    let built = engine.weft(&["image", "build", "--tag", "weft:test"]);
    assert!(built.status.success(), "{}", text(&built));
    let work = tempfile::tempdir().expect("temp dir");
    let spec = work.path().join("network.yaml");
    let spec_text = two_org_spec(
        "boxed",
        free_port(),
        false,
        "  - name: boxed\n    endorsementPolicy: \"OR('Org1MSP.peer','Org2MSP.peer')\"\n    launcher:\n      docker: {image: 'weft:test', command: [chaincode, run, basic]}\n",
    );
    std::fs::write(&spec, spec_text).expect("spec");
    let network = UpNetwork {
        engine: &engine,
        dir: work.path().join("net"),
    };
    let up = network.ok(&["up", spec.to_str().expect("utf8")]);
    assert!(
        up.contains("chaincode boxed: container weft-cc-boxed-"),
        "{up}"
    );
    network.ok(&[
        "chaincode",
        "invoke",
        "boxed",
        "CreateAsset",
        "d1",
        "blue",
        "5",
        "Tom",
        "100",
    ]);
    let read = network.ok(&[
        "chaincode",
        "query",
        "--org",
        "Org2",
        "boxed",
        "ReadAsset",
        "d1",
    ]);
    assert!(read.contains(r#""Owner":"Tom""#), "{read}");

    // The container, found by the network's label.
    let label = format!("label=weft.network={}", network.dir.display());
    let listed = engine.docker(&["ps", "-q", "--filter", &label]);
    let id = String::from_utf8_lossy(&listed.stdout).trim().to_owned();
    assert!(!id.is_empty() && !id.contains('\n'), "{}", text(&listed));

    // It dies (its process killed, not stopped through the engine): the
    // engine starts it again and the chaincode serves again.
    let pid = engine.docker(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_owned();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = engine.docker(&["inspect", "-f", "{{.RestartCount}} {{.State.Running}}", &id]);
        if String::from_utf8_lossy(&state.stdout).trim() == "1 true" {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&state));
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = network.weft(&["chaincode", "query", "boxed", "ReadAsset", "d1"]);
        if read.status.success() {
            assert!(text(&read).contains(r#""Owner":"Tom""#), "{}", text(&read));
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&read));
        std::thread::sleep(Duration::from_millis(500));
    }

    // Unchanged, it is kept; `weft down` removes it.
    let again = network.ok(&["up"]);
    assert!(
        again.contains("container weft-cc-boxed-") && again.contains("running at"),
        "{again}"
    );
    let down = network.ok(&["down"]);
    assert!(down.contains("1 chaincode container(s) removed"), "{down}");
    let listed = engine.docker(&["ps", "-aq", "--filter", &label]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
        "{}",
        text(&listed)
    );

    // An image the engine lacks is named, and no node starts.
    let missing = work.path().join("missing.yaml");
    std::fs::write(
        &missing,
        std::fs::read_to_string(&spec)
            .expect("spec")
            .replace("'weft:test'", "'no-such-chaincode:1'"),
    )
    .expect("spec");
    let other = UpNetwork {
        engine: &engine,
        dir: work.path().join("other"),
    };
    let refused = other.weft(&["up", missing.to_str().expect("utf8")]);
    assert!(!refused.status.success());
    assert!(
        text(&refused)
            .contains("chaincode boxed: image no-such-chaincode:1 is not in the Docker engine"),
        "{}",
        text(&refused)
    );
    assert!(!other.dir.join("nodes").exists());
}

/// `launcher: {docker: {build: DIR}}` with a Node chaincode written with
/// the official `fabric-contract-api`: `weft up` builds its image (a
/// generated multi-stage Dockerfile: npm in a build stage, `FROM scratch`
/// at run time), runs it as a service, and the official Node gateway client
/// submits and evaluates through it. Unchanged source is not rebuilt; a
/// change is, and replaces the container.
#[test]
fn weft_up_builds_a_node_chaincode_image_and_the_gateway_client_uses_it() {
    let Some(engine) = Engine::start() else {
        return;
    };
    weft_compat::node_packages().expect("npm packages (compat/install.sh)");
    let work = tempfile::tempdir().expect("temp dir");
    let source = node_chaincode_source(work.path());
    let peer = free_port();
    let spec = work.path().join("network.yaml");
    std::fs::write(
        &spec,
        two_org_spec(
            "node-in-docker",
            peer,
            false,
            "  - name: assets\n    launcher: {docker: {build: assets-cc}}\n",
        ),
    )
    .expect("spec");
    let network = UpNetwork {
        engine: &engine,
        dir: work.path().join("net"),
    };
    let up = network.ok(&["up", spec.to_str().expect("utf8")]);
    assert!(
        up.contains("building weft-cc-assets:1.0 from")
            && up.contains("FROM scratch")
            && up.contains("container weft-cc-assets-"),
        "{up}"
    );

    // The official client, as User1 of Org1, endorsed by both orgs.
    support::run_gateway_app(&network.dir, peer, "assets");

    // Unchanged source: no rebuild, the same container.
    let again = network.ok(&["up"]);
    assert!(
        again.contains("image weft-cc-assets:1.0: up to date") && again.contains("running at"),
        "{again}"
    );
    let created = network.ok(&[
        "chaincode",
        "invoke",
        "assets",
        "CreateAsset",
        "kept",
        "teal",
        "3",
        "Ann",
        "30",
    ]);
    // Changed source: rebuilt, and a new container runs it.
    let mut code = std::fs::read_to_string(source.join("index.js")).expect("index.js");
    code.push_str("\n// changed\n");
    std::fs::write(source.join("index.js"), code).expect("index.js");
    let changed = network.ok(&["up"]);
    assert!(
        changed.contains("building weft-cc-assets:1.0") && changed.contains("started at"),
        "{changed}"
    );
    let read = network.weft(&["chaincode", "query", "assets", "ReadAsset", "kept"]);
    assert!(
        text(&read).contains(r#""Owner":"Ann""#),
        "{}\n{created}\n{changed}\n{}",
        text(&read),
        network.ok(&["status"])
    );
}

/// `DIR/assets-cc`: the asset-transfer chaincode the Node interop tests
/// run (official `fabric-contract-api`), with a package.json of its own
/// pinning the versions they use.
fn node_chaincode_source(dir: &Path) -> PathBuf {
    let packages = weft_compat::node_packages().expect("npm packages (compat/install.sh)");
    let source = dir.join("assets-cc");
    std::fs::create_dir(&source).expect("source dir");
    std::fs::copy(
        packages.join("node/chaincode/index.js"),
        source.join("index.js"),
    )
    .expect("index.js");
    // The same fabric-contract-api and fabric-shim versions the other
    // Node tests pin.
    let pinned: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(packages.join("package.json")).expect("compat/package.json"),
    )
    .expect("package.json");
    let version = |name: &str| {
        pinned["devDependencies"][name]
            .as_str()
            .or_else(|| pinned["dependencies"][name].as_str())
            .unwrap_or_else(|| panic!("{name} in compat/package.json"))
            .to_owned()
    };
    std::fs::write(
        source.join("package.json"),
        serde_json::json!({
            "name": "assets-cc",
            "private": true,
            "main": "index.js",
            "dependencies": {
                "fabric-contract-api": version("fabric-contract-api"),
                "fabric-shim": version("fabric-shim"),
            },
        })
        .to_string(),
    )
    .expect("package.json");
    source
}

/// `weft up --containers`: the same spec as a compose project on the local
/// engine (weft's image built because the engine lacks it), usable with
/// `--dir` like any network; `weft down` keeps the ledgers for the next
/// `weft up --containers`, `--purge` deletes them.
#[test]
fn weft_up_containers_runs_the_spec_in_containers() {
    let Some(engine) = Engine::start() else {
        return;
    };
    let work = tempfile::tempdir().expect("temp dir");
    let spec = work.path().join("network.yaml");
    std::fs::write(
        &spec,
        two_org_spec(
            "boxed-up",
            free_port(),
            true,
            "  - name: basic\n    launcher: {builtin: basic}\n",
        ),
    )
    .expect("spec");
    let dir = work.path().join("net");
    let dir_arg = dir.to_str().expect("utf8");
    // `up` creates the project's network and waits for init; the rule that
    // opens it goes in as soon as it exists.
    let up = |args: &[&str]| {
        std::thread::scope(|scope| {
            let opened = scope.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    if dir.join(".env").exists() {
                        let network = format!("{}_weft", compose_project_name(&dir));
                        let found = engine.docker(&["network", "inspect", &network]);
                        if found.status.success() {
                            return Forwarding::allow(&engine, &network);
                        }
                    }
                    assert!(Instant::now() < deadline, "no project network");
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            let output = engine.weft(args);
            let forwarding = opened.join().expect("forwarding");
            assert!(output.status.success(), "{}", text(&output));
            (text(&output), forwarding)
        })
    };
    let (said, forwarding) = up(&[
        "up",
        "--containers",
        spec.to_str().expect("utf8"),
        "--dir",
        dir_arg,
    ]);
    assert!(
        said.contains("building weft:") && said.contains("ready"),
        "{said}"
    );
    let invoked = engine.weft(&[
        "chaincode",
        "invoke",
        "--dir",
        dir_arg,
        "basic",
        "CreateAsset",
        "c1",
        "red",
        "1",
        "Ann",
        "10",
    ]);
    assert!(invoked.status.success(), "{}", text(&invoked));
    let down = engine.weft(&["down", "--dir", dir_arg]);
    assert!(down.status.success(), "{}", text(&down));
    drop(forwarding);

    let (said, _forwarding) = up(&["up", "--containers", "--dir", dir_arg]);
    assert!(!said.contains("building weft:"), "{said}");
    let read = engine.weft(&[
        "chaincode",
        "query",
        "--dir",
        dir_arg,
        "--org",
        "Org2",
        "basic",
        "ReadAsset",
        "c1",
    ]);
    assert!(text(&read).contains(r#""Owner":"Ann""#), "{}", text(&read));
    let status = engine.weft(&["status", "--dir", dir_arg]);
    assert!(
        text(&status).contains("3/3 node(s) healthy"),
        "{}",
        text(&status)
    );

    let name = compose_project_name(&dir);
    let purged = engine.weft(&["down", "--dir", dir_arg, "--purge"]);
    assert!(purged.status.success(), "{}", text(&purged));
    assert!(!dir.exists());
    let volumes = engine.docker(&["volume", "ls", "-q"]);
    assert!(
        !String::from_utf8_lossy(&volumes.stdout).contains(&format!("{name}_")),
        "{}",
        text(&volumes)
    );
}
