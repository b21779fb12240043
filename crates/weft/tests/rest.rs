//! `weft rest` as `weft up` runs it, driven by a real HTTP client (Node's
//! fetch): every endpoint, every error class, Server-Sent Events in order
//! and resumed, the in-flight limit, and the OpenAPI document validated
//! (PyPI `openapi-spec-validator`) against the routes it describes.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::up::UpNetwork;
use support::{WEFT, free_port};

fn node(args: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .current_dir(weft_compat::compat_dir())
        .arg(weft_compat::compat_dir().join("node/rest-client.mjs"))
        .args(args)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "rest-client.mjs {:?}: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn status(answer: &serde_json::Value) -> u64 {
    answer["status"]
        .as_u64()
        .unwrap_or_else(|| panic!("{answer}"))
}

fn error_code(answer: &serde_json::Value) -> &str {
    answer["body"]["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error body: {answer}"))
}

#[test]
fn the_rest_gateway_serves_every_endpoint_and_error_class() {
    let port = free_port();
    let spec = format!(
        "name: rest\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{}]}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]}}\n\
         orderers:\n\
         \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n\
         \x20 nodes: 1\n\
         \x20 ports: [{}]\n\
         channels:\n\
         \x20 - name: mychannel\n\
         \x20 - {{name: org1only, organizations: [Org1]}}\n\
         chaincodes:\n\
         \x20 - name: basic\n\
         \x20   launcher: {{builtin: basic}}\n\
         rest: {{port: {port}}}\n",
        free_port(),
        free_port(),
        free_port()
    );
    let network = UpNetwork::up(&spec, &[]);
    let listed = network.ok(&["status"]);
    assert!(
        listed.contains(&format!("127.0.0.1:{port}")) && listed.contains("REST gateway"),
        "{listed}"
    );

    let key = |org: &str| {
        network
            .ok(&["rest", "key", "create", "--org", org, "--user", "User1"])
            .trim()
            .to_owned()
    };
    let (key1, key2, revoked) = (key("Org1"), key("Org2"), key("Org1"));
    let revoked_id = revoked.split('.').nth(1).expect("key id").to_owned();
    network.ok(&["rest", "key", "revoke", &revoked_id]);
    let listed = network.ok(&["rest", "key", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&revoked_id) && l.ends_with("revoked")),
        "{listed}"
    );
    let keys = std::fs::read_to_string(network.path().join("rest/keys.json")).expect("keys");
    assert!(
        !keys.contains(key1.rsplit('.').next().expect("secret")),
        "stored hashed"
    );

    let base = format!("http://127.0.0.1:{port}");
    let out = node(&["all", &base, &key1, &key2, &revoked, "org1only"]);

    // The document, and every route it lists.
    assert_eq!(status(&out["openapi"]), 200);
    let document = &out["openapi"]["body"];
    assert_eq!(document["openapi"], "3.0.3");
    let document_path = network.dir.path().join("openapi.json");
    std::fs::write(&document_path, document.to_string()).expect("document");
    let validated = Command::new(weft_compat::python().expect("python venv"))
        .args(["-m", "openapi_spec_validator"])
        .arg(&document_path)
        .output()
        .expect("openapi-spec-validator");
    assert!(
        validated.status.success(),
        "the OpenAPI document does not validate: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    let paths: Vec<&String> = document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .collect();
    for (_, route) in weft_rest::openapi::ROUTES {
        assert!(
            paths.iter().any(|p| p == route),
            "{route} is not documented"
        );
    }

    // Submit, query, async submit, status.
    assert_eq!(status(&out["created"]), 200, "{}", out["created"]);
    assert_eq!(out["created"]["requestId"], "req-created");
    let created = &out["created"]["body"];
    assert_eq!(created["status"], "VALID");
    assert!(created["blockNumber"].as_u64().is_some_and(|b| b > 0));
    assert_eq!(created["result"]["Owner"], "Tom", "JSON results stay JSON");
    assert_eq!(status(&out["queried"]), 200);
    assert_eq!(out["queried"]["body"]["result"]["ID"], "r1");
    assert_eq!(status(&out["accepted"]), 202);
    assert_eq!(out["accepted"]["body"]["status"], "PENDING");
    assert_eq!(
        out["asyncStatus"]["body"]["status"], "VALID",
        "{}",
        out["asyncStatus"]
    );
    assert_eq!(out["status"]["body"]["status"], "VALID");
    assert_eq!(out["status"]["body"]["blockNumber"], created["blockNumber"]);
    assert_eq!(status(&out["unknownTx"]), 404);

    // Errors: status, code, and a JSON body naming what was wrong.
    for (case, expected_status, expected_code) in [
        ("noKey", 401, "UNAUTHORIZED"),
        ("wrongKey", 401, "UNAUTHORIZED"),
        ("revokedKey", 401, "UNAUTHORIZED"),
        ("notJoined", 404, "NOT_FOUND"),
        ("notJson", 400, "BAD_REQUEST"),
        ("badArg", 400, "BAD_REQUEST"),
        ("unknownField", 400, "BAD_REQUEST"),
        ("noFunction", 400, "BAD_REQUEST"),
        ("chaincodeError", 422, "CHAINCODE_ERROR"),
        ("chaincodeSubmitError", 422, "CHAINCODE_ERROR"),
        ("tooLarge", 413, "PAYLOAD_TOO_LARGE"),
        ("badChannel", 400, "BAD_REQUEST"),
        ("badAsync", 400, "BAD_REQUEST"),
        ("noSuchEndpoint", 404, "NOT_FOUND"),
    ] {
        assert_eq!(status(&out[case]), expected_status, "{case}: {}", out[case]);
        assert_eq!(
            error_code(&out[case]),
            expected_code,
            "{case}: {}",
            out[case]
        );
    }
    let message = |case: &str| {
        out[case]["body"]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        message("badArg").contains("`args[1]`"),
        "{}",
        message("badArg")
    );
    assert!(message("unknownField").contains("`argz`"));
    assert!(message("noFunction").contains("`function`"));
    assert_eq!(
        message("chaincodeError"),
        "the asset missing does not exist"
    );
    assert!(
        message("chaincodeSubmitError").contains("already exists"),
        "{}",
        message("chaincodeSubmitError")
    );
    assert_eq!(
        out["chaincodeSubmitError"]["body"]["error"]["phase"],
        "endorse"
    );

    // Events in commit order, with ids to resume after.
    let events = out["events"]["events"].as_array().expect("events");
    assert_eq!(out["events"]["contentType"], "text/event-stream");
    assert_eq!(events.len(), 5, "{}", out["events"]);
    let ids: Vec<(u64, u64)> = events
        .iter()
        .map(|e| {
            let (block, tx) = e["id"]
                .as_str()
                .expect("id")
                .split_once(':')
                .expect("block:tx");
            (block.parse().expect("block"), tx.parse().expect("tx"))
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    let assets: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["payload"]["ID"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(assets, ["r1", "r2", "r3", "r4", "r5"]);
    assert_eq!(events[0]["event"], "CreateAsset");
    assert_eq!(out["resumedSince"]["events"][0], events[2]);
    assert_eq!(out["resumedLastEventId"]["events"][0], events[2]);
    assert_eq!(status(&out["eventsNoChaincode"]), 400);

    // A second gateway, configured by hand: one request at a time, and an
    // Org2 identity reaching the network through Org1's peer.
    let busy_port = free_port();
    let org1_peer = std::fs::read_to_string(network.path().join("rest/rest.yaml"))
        .expect("rest.yaml")
        .lines()
        .find_map(|l| l.trim().strip_prefix("gateway: "))
        .expect("a gateway line")
        .to_owned();
    let org2_msp = network
        .path()
        .join("organizations/peerOrganizations/org2.example.com/users/User1@org2.example.com/msp");
    let config = std::fs::read_to_string(network.path().join("rest/rest.yaml"))
        .expect("rest.yaml")
        .replace(
            &format!("listen: \"127.0.0.1:{port}\""),
            &format!("listen: \"127.0.0.1:{busy_port}\"\nlimits: {{maxInFlight: 1}}"),
        )
        + &format!(
            "  Org2/Via1:\n    mspId: Org2MSP\n    identity: {{msp: {}}}\n    {}: {org1_peer}\n",
            org2_msp.display(),
            "gateway"
        );
    let busy_config = network.path().join("rest/busy.yaml");
    std::fs::write(&busy_config, config).expect("config");
    let mut busy = Command::new(WEFT)
        .args(["rest", "start", "--config"])
        .arg(&busy_config)
        .stderr(Stdio::null())
        .spawn()
        .expect("weft rest start");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", busy_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the second gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let busy_base = format!("http://127.0.0.1:{busy_port}");
    // An identity the channel's policies refuse: 403.
    let created = Command::new(WEFT)
        .args([
            "rest", "key", "create", "--org", "Org2", "--user", "Via1", "--config",
        ])
        .arg(&busy_config)
        .output()
        .expect("weft rest key create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let via1 = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let forbidden = node(&[
        "call",
        &busy_base,
        &via1,
        "POST",
        "/api/v1/channels/org1only/chaincodes/basic/query",
        r#"{"function":"ReadAsset","args":["r1"]}"#,
    ]);
    assert_eq!(status(&forbidden), 403, "{forbidden}");
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let answers = node(&["busy", &busy_base, &key1]);
    let _ = busy.kill();
    let _ = busy.wait();
    let statuses: Vec<u64> = answers["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{answers}"
    );
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{answers}");

    // Request ids reach the log.
    let log = network.ok(&["logs", "rest", "-n", "400"]);
    assert!(log.contains("req-created"), "{log}");
}
