//! Fabric's chaincode install packages on real `weft peer` processes:
//! `weft peer lifecycle chaincode package|calculatepackageid|install|
//! queryinstalled|getinstalledpackage` with Fabric's flags and `CORE_PEER_*`
//! environment. A chaincode-as-a-service package (test-network's `-ccaas`
//! style) and a Node package (built by the peer with `npm install`) are
//! installed on both peers, approved by their package ids, committed and
//! run (the first through `weft peer chaincode invoke|query`, Fabric's
//! flags); installs survive a peer restart; bad packages, repeated installs
//! and installs by non-admins are refused with Fabric's messages.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::network::{CHANNEL, Network};

const AND: &str = "AND('Org1MSP.peer','Org2MSP.peer')";

fn args(values: &[&str]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

/// `weft peer lifecycle chaincode <args>` as `user` of org `i` (no channel).
fn chaincode(network: &Network, i: usize, user: &str, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["lifecycle", "chaincode"];
    full.extend_from_slice(args);
    network.peer_command_as(i, user, &full)
}

fn sha256_hex(bytes: &[u8]) -> String {
    weft_crypto::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn package(dir: &Path, lang: &str, label: &str, output: &Path) {
    let status = Command::new(support::WEFT)
        .args(["peer", "lifecycle", "chaincode", "package"])
        .arg(output)
        .arg("--path")
        .arg(dir)
        .args(["--lang", lang, "--label", label])
        .status()
        .expect("weft package");
    assert!(status.success(), "package {label}");
}

/// Approves `package_id` as `name` for both organisations and commits it.
fn define(network: &Network, name: &str, package_id: &str) {
    for i in 0..2 {
        network
            .lifecycle(
                i,
                &[
                    "approveformyorg",
                    "-n",
                    name,
                    "--package-id",
                    package_id,
                    "--signature-policy",
                    AND,
                ],
            )
            .unwrap_or_else(|e| panic!("approve {name} for org {i}: {e}"));
    }
    network.settle();
    network
        .lifecycle(0, &["commit", "-n", name, "--signature-policy", AND])
        .unwrap_or_else(|e| panic!("commit {name}: {e}"));
    let height = network.height(0).expect("height");
    network.wait_for_height(1, height);
}

struct ChaincodeServer(std::process::Child);

impl Drop for ChaincodeServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on 127.0.0.1:`port` (the chaincode server).
fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn compat() -> PathBuf {
    weft_compat::node_packages().expect("npm packages")
}

#[test]
fn fabric_install_packages_are_installed_listed_and_run() {
    let compat = compat();
    let mut network = Network::start(1, "  []\n", &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let work = tempfile::tempdir().expect("dir");

    // A chaincode-as-a-service package: connection.json, as test-network's
    // `-ccaas` packages it.
    let port = support::free_port();
    let ccaas = work.path().join("ccaas");
    std::fs::create_dir_all(&ccaas).expect("dir");
    std::fs::write(
        ccaas.join("connection.json"),
        format!(r#"{{"address":"127.0.0.1:{port}","dial_timeout":"10s","tls_required":false}}"#),
    )
    .expect("connection.json");
    let indexes = ccaas.join("META-INF/statedb/couchdb/indexes");
    std::fs::create_dir_all(&indexes).expect("dir");
    std::fs::write(indexes.join("indexOwner.json"), "not json").expect("index");
    let file = work.path().join("basic.tar.gz");
    package(&ccaas, "ccaas", "basic_1.0", &file);
    // A package whose index is not an index is refused, and not installed.
    let refused = chaincode(
        &network,
        0,
        "Admin",
        &["install", file.to_str().expect("utf-8")],
    )
    .expect_err("a bad index");
    assert!(
        refused.contains("index META-INF/statedb/couchdb/indexes/indexOwner.json: "),
        "{refused}"
    );
    std::fs::write(
        indexes.join("indexOwner.json"),
        r#"{"index":{"fields":["Owner"]},"ddoc":"indexOwnerDoc","name":"indexOwner","type":"json"}"#,
    )
    .expect("index");
    package(&ccaas, "ccaas", "basic_1.0", &file);
    let bytes = std::fs::read(&file).expect("package");
    let package_id = format!("basic_1.0:{}", sha256_hex(&bytes));
    let calculated = chaincode(
        &network,
        0,
        "Admin",
        &["calculatepackageid", file.to_str().expect("utf-8")],
    )
    .expect("calculatepackageid");
    assert_eq!(calculated.trim(), package_id);

    // Only an admin of the peer's organisation installs.
    let path = file.to_str().expect("utf-8");
    let user = chaincode(&network, 0, "User1", &["install", path]).expect_err("User1 is no admin");
    assert!(user.contains("is not an admin of Org1MSP"), "{user}");
    for i in 0..2 {
        let installed = chaincode(&network, i, "Admin", &["install", path])
            .unwrap_or_else(|e| panic!("install on peer {i}: {e}"));
        assert_eq!(
            installed.trim(),
            format!("Chaincode code package identifier: {package_id}")
        );
    }
    let again = chaincode(&network, 0, "Admin", &["install", path]).expect_err("installed");
    assert!(
        again.contains(&format!(
            "chaincode already successfully installed (package ID '{package_id}')"
        )),
        "{again}"
    );
    let garbage = work.path().join("garbage.tar.gz");
    std::fs::write(&garbage, b"this is no package").expect("write");
    let refused = chaincode(
        &network,
        0,
        "Admin",
        &["install", garbage.to_str().expect("utf-8")],
    )
    .expect_err("not a package");
    assert!(refused.contains("not a gzipped tar archive"), "{refused}");

    let listed = chaincode(&network, 1, "Admin", &["queryinstalled"]).expect("queryinstalled");
    assert_eq!(
        listed,
        format!("Installed chaincodes on peer:\nPackage ID: {package_id}, Label: basic_1.0\n")
    );
    // Refused packages left nothing behind: one stored package, Fabric's name.
    let stored: Vec<String> = std::fs::read_dir(network.data_dir(0).join("lifecycle/chaincodes"))
        .expect("lifecycle/chaincodes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored, [format!("{}.tar.gz", package_id.replace(':', "."))]);

    // The package id is what the organisations approve; the server runs
    // under that id, as Fabric's ccaas builder tells it.
    let _server = ChaincodeServer(
        Command::new(compat.join("node_modules/.bin/fabric-chaincode-node"))
            .args([
                "server",
                "--chaincode-address",
                &format!("127.0.0.1:{port}"),
                "--chaincode-id",
                &package_id,
            ])
            .current_dir(compat.join("node/chaincode"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the chaincode server"),
    );
    wait_for_port(port);
    define(&network, "basic", &package_id);
    // Fabric's `peer chaincode invoke|query`, as test-network's scripts call them.
    let org1 = network.gateway(0, "User1");
    network
        .peer_command_as(
            0,
            "User1",
            &[
                "chaincode",
                "invoke",
                "-o",
                "localhost:7050",
                "--tls",
                "-C",
                CHANNEL,
                "-n",
                "basic",
                "--peerAddresses",
                &network.endpoint(0),
                "--tlsRootCertFiles",
                network.tls_ca(0).to_str().expect("utf-8"),
                "-c",
                r#"{"function":"CreateAsset","Args":["p1","blue","5","Tom","100"]}"#,
            ],
        )
        .unwrap_or_else(|e| panic!("peer chaincode invoke: {e}\n{}", network.log(0)));
    let height = network.height(0).expect("height");
    network.wait_for_height(1, height);
    let read = network
        .peer_command_as(
            1,
            "User1",
            &[
                "chaincode",
                "query",
                "-C",
                CHANNEL,
                "-n",
                "basic",
                "-c",
                r#"{"Args":["ReadAsset","p1"]}"#,
            ],
        )
        .expect("peer chaincode query");
    assert!(read.contains(r#""Owner":"Tom""#), "{read}");
    // The package's index is declared in the chaincode's namespace.
    assert!(
        network
            .log(0)
            .contains("channel mychannel: declared index indexOwner.json of package basic_1.0:")
            && network.log(0).contains("in namespace basic"),
        "{}",
        network.log(0)
    );
    let owned = runtime
        .block_on(org1.evaluate(CHANNEL, "basic", &args(&["QueryByOwner", "Tom"])))
        .expect("QueryByOwner");
    assert!(String::from_utf8_lossy(&owned).contains("p1"));

    // The installed package comes back byte for byte.
    let out = work.path().join("fetched");
    std::fs::create_dir_all(&out).expect("dir");
    chaincode(
        &network,
        0,
        "Admin",
        &[
            "getinstalledpackage",
            "--package-id",
            &package_id,
            "--output-directory",
            out.to_str().expect("utf-8"),
        ],
    )
    .expect("getinstalledpackage");
    assert_eq!(
        std::fs::read(out.join(format!("{package_id}.tar.gz"))).expect("fetched"),
        bytes
    );

    // A Node package: the peer unpacks it, runs `npm install` and starts it.
    let node = work.path().join("node");
    std::fs::create_dir_all(&node).expect("dir");
    std::fs::copy(
        compat.join("node/chaincode/index.js"),
        node.join("index.js"),
    )
    .expect("index.js");
    let modules = compat.join("node_modules");
    std::fs::write(
        node.join("package.json"),
        serde_json::json!({
            "name": "nodecc",
            "version": "1.0.0",
            "main": "index.js",
            "scripts": { "start": "fabric-chaincode-node start" },
            "dependencies": {
                "fabric-contract-api": format!("file:{}", modules.join("fabric-contract-api").display()),
                "fabric-shim": format!("file:{}", modules.join("fabric-shim").display()),
            }
        })
        .to_string(),
    )
    .expect("package.json");
    let node_file = work.path().join("nodecc.tar.gz");
    package(&node, "node", "nodecc_1.0", &node_file);
    let node_id = format!(
        "nodecc_1.0:{}",
        sha256_hex(&std::fs::read(&node_file).expect("package"))
    );
    for i in 0..2 {
        chaincode(
            &network,
            i,
            "Admin",
            &["install", node_file.to_str().expect("utf-8")],
        )
        .unwrap_or_else(|e| panic!("install the node package on peer {i}: {e}"));
    }
    define(&network, "nodecc", &node_id);
    let created = runtime
        .block_on(org1.submit(
            CHANNEL,
            "nodecc",
            &args(&["CreateAsset", "n1", "red", "3", "Ann", "7"]),
        ))
        .unwrap_or_else(|e| panic!("CreateAsset on the node package: {e}\n{}", network.log(0)));
    network.wait_for_height(1, created.block + 1);

    // Flags win over the environment: Org2's admin flags with Org1's admin
    // still in CORE_PEER_MSPCONFIGPATH (as after test-network's setGlobals 1).
    let listed = Command::new(support::WEFT)
        .args(["peer", "channel", "list"])
        .args(network.admin_args(1))
        .env(
            "CORE_PEER_MSPCONFIGPATH",
            network.org_dir(0).join("users/Admin@org1.example.com/msp"),
        )
        .output()
        .expect("weft peer channel list");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // Installs survive a restart: listed, and both chaincodes run again.
    network.kill_peer(0);
    network.start_peer(0);
    let listed = chaincode(
        &network,
        0,
        "Admin",
        &["queryinstalled", "--output", "json"],
    )
    .expect("queryinstalled");
    let listed: serde_json::Value = serde_json::from_str(listed.trim()).expect("json");
    let mut ids: Vec<&str> = listed["installed_chaincodes"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["package_id"].as_str().expect("id"))
        .collect();
    ids.sort();
    let mut expected = vec![package_id.as_str(), node_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    let org1 = network.gateway(0, "User1");
    for (name, key) in [("basic", "p1"), ("nodecc", "n1")] {
        let read = runtime
            .block_on(org1.evaluate(CHANNEL, name, &args(&["ReadAsset", key])))
            .unwrap_or_else(|e| panic!("ReadAsset {key} after a restart: {e}\n{}", network.log(0)));
        assert!(String::from_utf8_lossy(&read).contains(&format!("\"ID\":\"{key}\"")));
    }
}

#[test]
fn packages_weft_peers_cannot_run_are_refused_at_packaging() {
    let work = tempfile::tempdir().expect("dir");
    let output = Command::new(support::WEFT)
        .args(["peer", "lifecycle", "chaincode", "package", "go.tar.gz"])
        .arg("--path")
        .arg(work.path())
        .args(["--lang", "golang", "--label", "go_1.0"])
        .current_dir(work.path())
        .output()
        .expect("weft package");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("weft peers do not build golang chaincode")
            && stderr.contains("--lang ccaas"),
        "{stderr}"
    );
    let output = Command::new(support::WEFT)
        .args(["peer", "lifecycle", "chaincode", "package", "x.tar.gz"])
        .arg("--path")
        .arg(work.path())
        .args(["--lang", "ccaas", "--label", "_bad"])
        .current_dir(work.path())
        .output()
        .expect("weft package");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid label '_bad'"), "{stderr}");
    assert!(!work.path().join("x.tar.gz").exists());
}
