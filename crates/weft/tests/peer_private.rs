//! Private data collections end to end, with the official
//! `@hyperledger/fabric-gateway` client and a `fabric-contract-api` chaincode
//! using `putPrivateData` / `getPrivateData` / `getPrivateDataHash`, on real
//! peer and orderer processes. The definition's collections come from a
//! Fabric `collections_config.json` passed to `approveformyorg` and `commit`.
//!
//! - `org2secrets`: Org2 only, member-only reads, required/max peer count 1:
//!   Org1's peer endorses and must push the data to Org2's peer;
//! - `shared`: both organisations, max peer count 0: no push, so Org2's
//!   peer must pull the data from Org1's when it commits.

mod support;

use std::process::Command;

use support::network::Network;

const POLICY: &str = "OR('Org1MSP.peer', 'Org2MSP.peer')";

const COLLECTIONS: &str = r#"[
  {
    "name": "org2secrets",
    "policy": "OR('Org2MSP.member')",
    "requiredPeerCount": 1,
    "maxPeerCount": 1,
    "blockToLive": 0,
    "memberOnlyRead": true,
    "memberOnlyWrite": false
  },
  {
    "name": "shared",
    "policy": "OR('Org1MSP.member', 'Org2MSP.member')",
    "requiredPeerCount": 0,
    "maxPeerCount": 0,
    "blockToLive": 0,
    "memberOnlyRead": true,
    "memberOnlyWrite": true
  }
]"#;

fn classic(name: &str) -> String {
    let compat = weft_compat::compat_dir();
    format!(
        "  - name: {name}\n    id: {name}_1.0\n    launcher:\n      process:\n        command: [{cli}, start, --peer.address, \"{{peer_address}}\"]\n        dir: {dir}\n",
        cli = compat
            .join("node_modules/.bin/fabric-chaincode-node")
            .display(),
        dir = compat.join("node/chaincode").display(),
    )
}

/// `gateway-private.mjs ACTION ARGS` as User1 of org `org` through peer `peer`.
fn private(network: &Network, peer: usize, org: usize, args: &[&str]) -> serde_json::Value {
    let dir = weft_compat::node_packages().expect("npm packages");
    let (cert, key) = network.user(org, "User1");
    let output = weft_compat::run(
        Command::new("node")
            .arg(dir.join("node/gateway-private.mjs"))
            .arg(network.endpoint(peer))
            .arg(network.tls_ca(peer))
            .arg(cert)
            .arg(key)
            .arg(network.peers[org].msp_id)
            .arg("pdc")
            .args(args)
            .current_dir(&dir),
    )
    .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\n{}\npeer log: {}",
            String::from_utf8_lossy(&output.stderr),
            network.log(peer)
        )
    })
}

fn error_message(value: &serde_json::Value) -> String {
    let error = &value["error"];
    assert!(!error.is_null(), "an error was expected: {value}");
    let details: Vec<String> = error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    format!("{} {}", error["message"], details.join(" "))
}

fn sha256_hex(bytes: &[u8]) -> String {
    weft_crypto::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn private_data_reaches_member_peers_only_through_official_clients() {
    weft_compat::node_packages().expect("npm packages");
    let mut network = Network::start(1, &classic("pdc"), &[]);
    let config = network.root().join("collections_config.json");
    std::fs::write(&config, COLLECTIONS).expect("collections config");
    let config = config.display().to_string();
    let definition = [
        "-n",
        "pdc",
        "--signature-policy",
        POLICY,
        "--collections-config",
        &config,
    ];

    // A definition whose collections name an organisation outside the channel is refused.
    let bad = network.root().join("bad_collections.json");
    std::fs::write(
        &bad,
        r#"[{"name": "x", "policy": "OR('Org9MSP.member')", "maxPeerCount": 1}]"#,
    )
    .expect("bad config");
    let refused = network
        .lifecycle(
            0,
            &[
                "approveformyorg",
                "--package-id",
                "pdc_1.0",
                "-n",
                "pdc",
                "--collections-config",
                &bad.display().to_string(),
            ],
        )
        .expect_err("unknown member organisation");
    assert!(
        refused.contains("Org9MSP is not an organisation"),
        "{refused}"
    );

    for i in 0..2 {
        let mut args = vec!["approveformyorg", "--package-id", "pdc_1.0"];
        args.extend_from_slice(&definition);
        network
            .lifecycle(i, &args)
            .unwrap_or_else(|e| panic!("approve for org {i}: {e}"));
    }
    network.settle();
    // Committing without the collections does not match the approvals.
    let mismatch = network
        .lifecycle(0, &["commit", "-n", "pdc", "--signature-policy", POLICY])
        .expect_err("definition without collections");
    assert!(mismatch.contains("not agreed to"), "{mismatch}");
    let mut commit = vec!["commit"];
    commit.extend_from_slice(&definition);
    network.lifecycle(0, &commit).expect("commit");
    let committed = network
        .lifecycle(0, &["querycommitted", "-n", "pdc"])
        .expect("querycommitted");
    assert!(committed.contains("Sequence: 1"), "{committed}");

    // Org1's client writes into Org2's collection through Org1's peer, which
    // must hand the data to Org2's peer before it endorses.
    let put = private(
        &network,
        0,
        0,
        &["put", "org2secrets", "k1", "for org2 only"],
    );
    assert_eq!(put["ok"]["code"], 0, "{put}");
    let secret_block = put["ok"]["block"].as_u64().expect("block number");
    // Into the shared collection, with no push: Org2's peer pulls it.
    let put = private(&network, 0, 0, &["put", "shared", "k2", "for both"]);
    assert_eq!(put["ok"]["code"], 0, "{put}");
    let height = network.height(0).expect("height");
    network.wait_for_height(1, height);

    // Org2 reads both values on its own peer.
    let got = private(&network, 1, 1, &["get", "org2secrets", "k1"]);
    assert_eq!(got["ok"], "for org2 only", "{got}");
    let got = private(&network, 1, 1, &["get", "shared", "k2"]);
    assert_eq!(got["ok"], "for both", "pulled at commit: {got}");
    let got = private(&network, 0, 0, &["get", "shared", "k2"]);
    assert_eq!(got["ok"], "for both", "{got}");

    // Org1's client may not read Org2's collection (member-only reads) ...
    let refused = private(&network, 0, 0, &["get", "org2secrets", "k1"]);
    assert!(
        error_message(&refused).contains("does not have read access"),
        "{refused}"
    );
    // ... and Org1's peer does not hold the value, even for Org2's client.
    let absent = private(&network, 0, 1, &["get", "org2secrets", "k1"]);
    assert!(
        error_message(&absent)
            .contains("private data matching public hash version is not available"),
        "{absent}"
    );
    // Every peer has the hash.
    for peer in 0..2 {
        let hash = private(&network, peer, 0, &["hash", "org2secrets", "k1"]);
        assert_eq!(hash["ok"], sha256_hex(b"for org2 only"), "{hash}");
    }

    // Block events with private data carry the collections the requester's
    // organisation is a member of, from a peer that holds them.
    let block = secret_block.to_string();
    let event = private(&network, 1, 1, &["block", &block]);
    assert_eq!(event["ok"]["number"], secret_block, "{event}");
    assert_eq!(
        event["ok"]["transactions"][0]["namespaces"][0]["collections"],
        serde_json::json!(["org2secrets"]),
        "{event}"
    );
    let event = private(&network, 0, 0, &["block", &block]);
    assert_eq!(
        event["ok"]["transactions"],
        serde_json::json!([]),
        "{event}"
    );

    // A write to a collection the definition lacks is refused at endorsement.
    let refused = private(&network, 0, 0, &["put", "nosuch", "k", "v"]);
    assert!(
        error_message(&refused).contains("collection nosuch is not defined"),
        "{refused}"
    );

    // With Org2's peer down, nobody can acknowledge Org2's collection:
    // requiredPeerCount 1 fails the endorsement, and nothing is committed.
    network.kill_peer(1);
    let refused = private(&network, 0, 0, &["put", "org2secrets", "k3", "lost?"]);
    assert!(
        error_message(&refused).contains("requiredPeerCount is 1 but 0 peer(s) acknowledged"),
        "{refused}"
    );
    let hash = private(&network, 0, 0, &["hash", "org2secrets", "k3"]);
    assert_eq!(hash["ok"], "", "{hash}");
}
