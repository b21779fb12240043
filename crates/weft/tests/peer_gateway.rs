//! Real `weft orderer` and `weft peer` processes driven by the official
//! `@hyperledger/fabric-gateway` Node client, unchanged: evaluate, submit,
//! submitAsync + getStatus, chaincode events with checkpoint resume, block
//! and filtered block events, error details; the chaincode's policy is
//! AND(Org1, Org2), so every committed transaction proves the gateway
//! gathered a cross-organisation endorsement.

mod support;

use std::process::Command;

use support::network::Network;

const BASIC: &str = "  - name: basic\n    launcher: { builtin: basic }\n";
const AND: &str = "AND('Org1MSP.peer', 'Org2MSP.peer')";

/// Runs `compat/node/gateway-app.mjs` as User1 of org `i` against peer `i`.
fn gateway_app(network: &Network, i: usize, chaincode: &str) -> serde_json::Value {
    gateway_app_with(network, i, chaincode, "events")
}

fn gateway_app_with(network: &Network, i: usize, chaincode: &str, mode: &str) -> serde_json::Value {
    let dir = weft_compat::node_packages().expect("npm packages");
    let (cert, key) = network.user(i, "User1");
    let output = weft_compat::run(
        Command::new("node")
            .arg(dir.join("node/gateway-app.mjs"))
            .arg(network.endpoint(i))
            .arg(network.tls_ca(i))
            .arg(cert)
            .arg(key)
            .arg(network.peers[i].msp_id)
            .arg(chaincode)
            .arg(mode)
            .current_dir(&dir),
    )
    .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {}\n{stdout}\npeer log: {}",
        String::from_utf8_lossy(&output.stderr),
        network.log(i)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// What `gateway-app.mjs` must observe against any asset-transfer chaincode.
fn check_app_report(network: &Network, i: usize, report: &serde_json::Value, events: bool) {
    assert!(
        report.get("unexpected").is_none(),
        "{report:#}\n{}",
        network.log(0)
    );

    // A chaincode status 500 on evaluate is a gRPC error with details.
    let missing = &report["missing"]["error"];
    assert!(
        missing["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist"),
        "{missing}"
    );
    assert_eq!(
        missing["details"][0]["mspId"], network.peers[i].msp_id,
        "{missing}"
    );

    assert!(
        report["read"]["ID"]
            .as_str()
            .is_some_and(|id| id.starts_with("asset-")),
        "{}",
        report["read"]
    );
    assert_eq!(report["read"]["Owner"], "Tomoko");
    assert_eq!(report["read"]["AppraisedValue"], 300);
    assert_eq!(
        report["transferResult"], "Tomoko",
        "TransferAsset returns the old owner"
    );
    assert_eq!(
        report["transferStatus"]["code"], 0,
        "VALID under AND(Org1, Org2)"
    );
    assert_eq!(report["transferStatus"]["successful"], true);
    assert_eq!(
        report["transferStatus"]["transactionId"],
        report["transferTxId"]
    );
    assert_eq!(report["readAfterTransfer"]["Owner"], "Brad");
    assert_eq!(report["updateStatus"]["code"], 0);

    // Endorsement failure carries the chaincode's message per endorser.
    let duplicate = &report["duplicateCreate"]["error"];
    assert_eq!(duplicate["name"], "EndorseError", "{duplicate}");
    assert!(
        duplicate["details"].to_string().contains("already exists"),
        "{duplicate}"
    );

    // Events: the transfer's event first, then (resumed from the checkpoint) the update's.
    if events {
        assert_eq!(report["firstEvent"]["name"], "TransferAsset");
        assert_eq!(report["firstEvent"]["txId"], report["transferTxId"]);
        assert_eq!(report["firstEvent"]["payload"]["Owner"], "Brad");
        assert_eq!(report["resumedEvent"]["name"], "UpdateAsset");
        assert_eq!(report["resumedEvent"]["txId"], report["updateTxId"]);
    }

    assert_eq!(
        report["block"]["number"],
        report["transferStatus"]["blockNumber"]
    );
    assert_eq!(report["filteredBlock"]["channel"], "mychannel");
    let filtered = report["filteredBlock"]["transactions"]
        .as_array()
        .expect("transactions");
    assert!(
        filtered
            .iter()
            .any(|t| t["txId"] == report["transferTxId"] && t["code"] == 0),
        "{filtered:?}"
    );

    assert_eq!(
        report["wrongChannel"]["error"]["code"], 5,
        "NOT_FOUND: {}",
        report["wrongChannel"]
    );
    let unknown = &report["unknownChaincode"]["error"];
    assert_eq!(unknown["name"], "EndorseError", "{unknown}");
    assert!(
        unknown["details"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nosuchcc"),
        "{unknown}"
    );

    // The other org's peer committed the same transactions.
    let height = network.height(i).expect("height");
    network.wait_for_height(1 - i, height);
}

#[test]
fn the_official_gateway_client_runs_unchanged_with_cross_org_endorsement() {
    let network = Network::start(1, BASIC, &[("basic", "basic", AND)]);
    let report = gateway_app(&network, 0, "basic");
    check_app_report(&network, 0, &report, true);
}

fn shim_cli() -> std::path::PathBuf {
    weft_compat::compat_dir().join("node_modules/.bin/fabric-chaincode-node")
}

fn node_chaincode_dir() -> std::path::PathBuf {
    weft_compat::compat_dir().join("node/chaincode")
}

#[test]
fn a_fabric_contract_api_chaincode_launched_by_the_peer_runs_unchanged() {
    weft_compat::node_packages().expect("npm packages");
    let chaincodes = format!(
        "  - name: basic\n    id: basic_1.0\n    launcher:\n      process:\n        command: [{cli}, start, --peer.address, \"{{peer_address}}\"]\n        dir: {dir}\n",
        cli = shim_cli().display(),
        dir = node_chaincode_dir().display(),
    );
    let network = Network::start(1, &chaincodes, &[("basic", "basic_1.0", AND)]);
    // From the Org2 side this time.
    let report = gateway_app(&network, 1, "basic");
    check_app_report(&network, 1, &report, true);
}

/// A chaincode server the test runs (`fabric-chaincode-node server`).
struct ChaincodeServer(std::process::Child);

impl Drop for ChaincodeServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_fabric_contract_api_chaincode_as_a_service_runs_unchanged() {
    weft_compat::node_packages().expect("npm packages");
    let port = support::free_port();
    let _server = ChaincodeServer(
        Command::new(shim_cli())
            .args([
                "server",
                "--chaincode-address",
                &format!("127.0.0.1:{port}"),
                "--chaincode-id",
                "basic_1.0",
            ])
            .current_dir(node_chaincode_dir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the chaincode server"),
    );
    let chaincodes = format!(
        "  - name: basic\n    id: basic_1.0\n    launcher:\n      external:\n        address: 127.0.0.1:{port}\n"
    );
    let network = Network::start(1, &chaincodes, &[("basic", "basic_1.0", AND)]);
    let report = gateway_app(&network, 0, "basic");
    check_app_report(&network, 0, &report, true);
}

fn classic(name: &str) -> String {
    format!(
        "  - name: {name}\n    id: {name}_1.0\n    launcher:\n      process:\n        command: [{cli}, start, --peer.address, \"{{peer_address}}\"]\n        dir: {dir}\n",
        cli = shim_cli().display(),
        dir = node_chaincode_dir().display(),
    )
}

#[test]
fn bad_signatures_conflicts_replays_and_crashing_chaincode_get_clear_outcomes() {
    weft_compat::node_packages().expect("npm packages");
    let network = Network::start(
        1,
        &(classic("basic") + &classic("other")),
        &[("basic", "basic_1.0", AND), ("other", "other_1.0", AND)],
    );
    let dir = weft_compat::node_packages().expect("npm packages");
    let (cert, key) = network.user(0, "User1");
    let (_, other_key) = network.user(1, "User1");
    let output = weft_compat::run(
        Command::new("node")
            .arg(dir.join("node/gateway-negative.mjs"))
            .arg(network.endpoint(0))
            .arg(network.tls_ca(0))
            .arg(cert)
            .arg(key)
            .arg("Org1MSP")
            .arg(other_key)
            .current_dir(&dir),
    )
    .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        report.get("unexpected").is_none(),
        "{report:#}\n{}",
        network.log(0)
    );

    let bad = &report["badSignature"]["error"];
    assert_eq!(bad["code"], 7, "PERMISSION_DENIED: {bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or_default()
            .contains("signature"),
        "{bad}"
    );

    assert_eq!(
        report["mvcc"],
        serde_json::json!([0, 11]),
        "one VALID, one MVCC_READ_CONFLICT"
    );
    let expected_owner = if report["winner"] == "first" {
        "Ann"
    } else {
        "Bob"
    };
    assert_eq!(
        report["afterConflict"]["Owner"], expected_owner,
        "the VALID update is the one in state"
    );

    assert_eq!(report["replayFirst"], 0);
    let replay = &report["replay"]["error"];
    assert!(
        replay.to_string().contains("duplicate transaction"),
        "{replay}"
    );

    let crash = &report["crash"]["error"];
    assert!(crash.to_string().contains("terminated"), "{crash}");
    assert_eq!(
        report["afterCrash"]["ok"], "false",
        "the crashed transaction wrote nothing: {}",
        report["afterCrash"]
    );
    assert_eq!(
        report["readAfterCrash"]["ok"], "Carol",
        "{}",
        report["readAfterCrash"]
    );
    assert_eq!(
        report["readThrough"]["ok"], "Carol",
        "chaincode-to-chaincode: {}",
        report["readThrough"]
    );
    assert_eq!(
        report["history"]["ok"], 3,
        "create, the valid update, the transfer: {}",
        report["history"]
    );
    assert!(
        report["byOwner"]["ok"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k == &report["id"])),
        "{}",
        report["byOwner"]
    );
}

fn load_script(network: &Network, i: usize, args: &[&str]) -> Command {
    let dir = weft_compat::node_packages().expect("npm packages");
    let (cert, key) = network.user(i, "User1");
    let mut command = Command::new("node");
    command
        .arg(dir.join("node/gateway-load.mjs"))
        .arg(args[0])
        .arg(network.endpoint(i))
        .arg(network.tls_ca(i))
        .arg(cert)
        .arg(key)
        .arg(network.peers[i].msp_id)
        .args(&args[1..])
        .current_dir(&dir);
    command
}

fn json_output(output: std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn a_peer_killed_under_load_catches_up_to_the_same_state() {
    let mut network = Network::start(
        1,
        BASIC,
        &[("basic", "basic", "OR('Org1MSP.peer', 'Org2MSP.peer')")],
    );
    // Load through Org1's gateway while Org2's peer is killed and restarted.
    let load = load_script(&network, 0, &["load", "600", "16", "kill"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start load");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let before = network.height(1).expect("height before the kill");
    network.kill_peer(1);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    network.start_peer(1);
    let report = json_output(load.wait_with_output().expect("load"));
    let acked: Vec<String> = serde_json::from_value(report["acked"].clone()).expect("acked ids");
    eprintln!(
        "load: {} acknowledged in {} s ({:.0} tx/s through the Node client), failures {}",
        acked.len(),
        report["seconds"],
        report["tps"].as_f64().unwrap_or_default(),
        report["failures"]
    );
    assert_eq!(
        acked.len(),
        600,
        "every submission through the live gateway commits: {}",
        report["failures"]
    );

    let height = network.height(0).expect("height");
    assert!(
        height > before + 2,
        "the killed peer missed blocks ({before} → {height})"
    );
    network.wait_for_height(1, height);
    let states: Vec<serde_json::Value> = (0..2)
        .map(|i| {
            json_output(
                load_script(&network, i, &["state"])
                    .output()
                    .expect("state"),
            )
        })
        .collect();
    assert_eq!(
        states[0]["sha256"], states[1]["sha256"],
        "both peers hold the same assets"
    );
    let held: std::collections::BTreeSet<String> =
        serde_json::from_value(states[1]["ids"].clone()).expect("ids");
    let lost: Vec<&String> = acked.iter().filter(|id| !held.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but missing on the restarted peer: {lost:?}"
    );
}

#[test]
fn a_fabric_chaincode_python_chaincode_as_a_service_runs_unchanged() {
    let python = weft_compat::python().expect("the compat venv");
    let port = support::free_port();
    let _server = ChaincodeServer(
        Command::new(python)
            .arg(weft_compat::compat_dir().join("python/asset_cc.py"))
            .env("CHAINCODE_ID", "basic_1.0")
            .env("CHAINCODE_SERVER_ADDRESS", format!("127.0.0.1:{port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the Python chaincode server"),
    );
    let chaincodes = format!(
        "  - name: basic\n    id: basic_1.0\n    launcher:\n      external:\n        address: 127.0.0.1:{port}\n"
    );
    let network = Network::start(1, &chaincodes, &[("basic", "basic_1.0", AND)]);
    // fabric-chaincode-python 2.5.4 never sends the events set with
    // `set_event` (its handler leaves them off COMPLETED), so events are not checked.
    let report = gateway_app_with(&network, 0, "basic", "noevents");
    check_app_report(&network, 0, &report, false);
}
