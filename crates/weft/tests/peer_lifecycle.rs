//! Fabric's chaincode lifecycle on real `weft peer` processes, driven by
//! `weft peer lifecycle chaincode` with Fabric's flags and `CORE_PEER_*`
//! environment: a chaincode installed on both peers runs only once both
//! organisations approved its definition and it was committed; commits
//! without enough approvals, approvals by non-admins and out-of-order
//! sequences are refused with Fabric's messages; a definition is upgraded
//! to a new sequence.

mod support;

use support::network::{CHANNEL, Network};
use weft_client::ClientError;

const AND: &str = "AND('Org1MSP.peer','Org2MSP.peer')";
const OR: &str = "OR('Org1MSP.peer','Org2MSP.peer')";

fn user_gateway(network: &Network, i: usize) -> weft_client::Gateway {
    network.gateway(i, "User1")
}

fn args(values: &[&str]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_chaincode_runs_once_its_definition_is_approved_and_committed() {
    let network = Network::start(
        1,
        "  - name: basic\n    launcher: { builtin: basic }\n",
        &[],
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let org1 = user_gateway(&network, 0);

    // Installed but not defined: the chaincode does not run.
    let undefined = runtime
        .block_on(org1.evaluate(CHANNEL, "basic", &args(&["GetAllAssets"])))
        .expect_err("basic is not defined yet");
    assert!(
        undefined.to_string().contains(
            "make sure the chaincode basic has been successfully defined on channel mychannel"
        ),
        "{undefined}"
    );

    // Org1 approves; the commit needs Org2 too (a majority of two).
    let approve = [
        "approveformyorg",
        "-n",
        "basic",
        "--package-id",
        "basic",
        "--signature-policy",
        AND,
    ];
    network.lifecycle(0, &approve).expect("Org1 approves");
    let readiness = network
        .lifecycle(
            0,
            &[
                "checkcommitreadiness",
                "-n",
                "basic",
                "--signature-policy",
                AND,
                "--output",
                "json",
            ],
        )
        .expect("readiness");
    assert_eq!(
        json(&readiness)["approvals"],
        serde_json::json!({"Org1MSP": true, "Org2MSP": false})
    );
    let early = network
        .lifecycle(0, &["commit", "-n", "basic", "--signature-policy", AND])
        .expect_err("Org2 has not approved");
    assert!(
        early.contains("chaincode definition not agreed to by this org (Org2MSP)"),
        "{early}"
    );

    // Only an admin of the peer's own organisation approves for it.
    let user = network
        .lifecycle_as(1, "User1", &approve)
        .expect_err("User1 is no admin");
    assert!(
        user.contains("the creator is not an admin of Org2MSP"),
        "{user}"
    );
    // Sequences go one at a time.
    let skipped = network
        .lifecycle(
            1,
            &[
                "approveformyorg",
                "-n",
                "basic",
                "-v",
                "1.0",
                "--sequence",
                "3",
                "--package-id",
                "basic",
            ],
        )
        .expect_err("sequence 3 before 1");
    assert!(
        skipped.contains("requested sequence is 3, but new definition must be sequence 1"),
        "{skipped}"
    );

    network.lifecycle(1, &approve).expect("Org2 approves");
    network.settle();
    network
        .lifecycle(0, &["commit", "-n", "basic", "--signature-policy", AND])
        .expect("commit");
    let committed = json(
        &network
            .lifecycle(1, &["querycommitted", "-n", "basic", "--output", "json"])
            .expect("querycommitted"),
    );
    assert_eq!(committed["sequence"], 1);
    assert_eq!(committed["version"], "1.0");
    assert_eq!(
        committed["approvals"],
        serde_json::json!({"Org1MSP": true, "Org2MSP": true})
    );

    // Now it runs, under AND(Org1, Org2), from either organisation.
    let height = network.height(0).expect("height");
    network.wait_for_height(1, height);
    let created = runtime
        .block_on(org1.submit(
            CHANNEL,
            "basic",
            &args(&["CreateAsset", "lc1", "blue", "5", "Tom", "100"]),
        ))
        .expect("CreateAsset");
    network.wait_for_height(1, created.block + 1);
    let read = runtime
        .block_on(user_gateway(&network, 1).evaluate(
            CHANNEL,
            "basic",
            &args(&["ReadAsset", "lc1"]),
        ))
        .expect("ReadAsset from Org2");
    assert!(String::from_utf8_lossy(&read).contains("\"Owner\":\"Tom\""));

    // Re-defining sequence 1 differently is refused; sequence 2 upgrades it.
    let redefine = network
        .lifecycle(
            0,
            &[
                "approveformyorg",
                "-n",
                "basic",
                "--package-id",
                "basic",
                "--signature-policy",
                OR,
            ],
        )
        .expect_err("sequence 1 is committed with AND");
    assert!(
        redefine.contains("attempted to redefine the current committed sequence (1)")
            && redefine.contains("ValidationParameter"),
        "{redefine}"
    );
    let upgrade = |verb: &'static str| {
        vec![
            verb,
            "-n",
            "basic",
            "-v",
            "2.0",
            "--sequence",
            "2",
            "--signature-policy",
            OR,
        ]
    };
    for i in 0..2 {
        let mut approve = upgrade("approveformyorg");
        approve.extend(["--package-id", "basic"]);
        network.lifecycle(i, &approve).expect("approve sequence 2");
    }
    network.settle();
    network
        .lifecycle(1, &upgrade("commit"))
        .expect("commit sequence 2");
    let listed = network
        .lifecycle(0, &["querycommitted"])
        .expect("querycommitted");
    assert!(
        listed.contains("Name: basic, Version: 2.0, Sequence: 2, Endorsement Plugin: escc, Validation Plugin: vscc"),
        "{listed}"
    );
    let height = network.height(1).expect("height");
    network.wait_for_height(0, height);
    let updated =
        runtime.block_on(org1.submit(CHANNEL, "basic", &args(&["TransferAsset", "lc1", "Jerry"])));
    assert!(
        updated.is_ok(),
        "{:?}",
        updated.err().map(|e: ClientError| e.to_string())
    );
}
