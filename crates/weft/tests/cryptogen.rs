//! `weft cryptogen` as a user runs it: the files Fabric applications expect,
//! usable identities, a resumable second run, and clear spec errors.

use std::path::Path;
use std::process::{Command, Output};

use weft_material::{SigningIdentity, msp_dir};
use weft_msp::{Msp, MspManager, MspManagerConfig};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("run weft")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn default_network_material_has_fabrics_test_network_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("organizations");
    let output = weft(&["cryptogen", "--output", out.to_str().expect("utf-8")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("User1@org1.example.com"), "{stdout}");

    let expected = [
        "peerOrganizations/org1.example.com/ca/ca.org1.example.com-cert.pem",
        "peerOrganizations/org1.example.com/tlsca/tlsca.org1.example.com-cert.pem",
        "peerOrganizations/org1.example.com/msp/cacerts/ca.org1.example.com-cert.pem",
        "peerOrganizations/org1.example.com/msp/tlscacerts/tlsca.org1.example.com-cert.pem",
        "peerOrganizations/org1.example.com/msp/config.yaml",
        "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp/signcerts/cert.pem",
        "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp/keystore/priv_sk",
        "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/tls/ca.crt",
        "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/tls/server.crt",
        "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/tls/server.key",
        "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp/signcerts/cert.pem",
        "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp/keystore/priv_sk",
        "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp/cacerts/ca.org1.example.com-cert.pem",
        "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp/tlscacerts/tlsca.org1.example.com-cert.pem",
        "peerOrganizations/org1.example.com/users/User1@org1.example.com/tls/client.crt",
        "peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp/signcerts/cert.pem",
        "peerOrganizations/org2.example.com/users/User1@org2.example.com/msp/signcerts/cert.pem",
        "ordererOrganizations/example.com/orderers/orderer.example.com/msp/signcerts/cert.pem",
        "ordererOrganizations/example.com/orderers/orderer2.example.com/tls/server.crt",
        "ordererOrganizations/example.com/orderers/orderer3.example.com/tls/server.key",
        "ordererOrganizations/example.com/users/Admin@example.com/msp/keystore/priv_sk",
    ];
    for file in expected {
        assert!(out.join(file).is_file(), "missing {file}");
    }

    // Private keys are readable by their owner only; certificates by anyone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |file: &str| {
        let metadata = std::fs::metadata(out.join(file)).expect("metadata");
        metadata.permissions().mode() & 0o777
    };
    for key in expected
        .iter()
        .filter(|f| f.ends_with("priv_sk") || f.ends_with(".key"))
    {
        assert_eq!(mode(key), 0o600, "{key}");
    }
    assert_eq!(mode(expected[0]), 0o644);

    // The identities load and validate against their organisation's MSP.
    let manager = MspManager::new(
        [
            ("org1.example.com", "Org1MSP"),
            ("org2.example.com", "Org2MSP"),
        ]
        .map(|(domain, msp_id)| {
            let config = msp_dir::load_msp_config(
                &out.join("peerOrganizations").join(domain).join("msp"),
                msp_id,
            )
            .expect("msp dir");
            Msp::from_config(&config).expect("msp")
        }),
        MspManagerConfig::default(),
    );
    for who in [
        "users/User1@org1.example.com",
        "users/Admin@org1.example.com",
        "peers/peer0.org1.example.com",
    ] {
        let identity = SigningIdentity::load(
            &out.join("peerOrganizations/org1.example.com")
                .join(who)
                .join("msp"),
            "Org1MSP",
        )
        .expect(who);
        manager
            .validate(&identity.serialized(), now())
            .unwrap_or_else(|e| panic!("{who}: {e}"));
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((
                    path.display().to_string(),
                    std::fs::read(&path).expect("read"),
                ));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_second_run_keeps_everything_and_a_deleted_identity_is_restored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("organizations");
    let out_arg = out.to_str().expect("utf-8");
    assert!(
        weft(&["cryptogen", "--output", out_arg, "--quiet"])
            .status
            .success()
    );
    let first = snapshot(&out);
    let second_run = weft(&["cryptogen", "--output", out_arg]);
    assert!(second_run.status.success());
    assert!(String::from_utf8_lossy(&second_run.stdout).contains("0 identities written"));
    assert_eq!(
        snapshot(&out),
        first,
        "a second run must not change any file"
    );

    // Losing one identity (say, a crash while writing it) is repaired by re-running,
    // with the same CA: the other identities stay valid.
    let user = out.join("peerOrganizations/org1.example.com/users/User1@org1.example.com");
    std::fs::remove_file(user.join("msp/keystore/priv_sk")).expect("remove key");
    let repair = weft(&["cryptogen", "--output", out_arg]);
    assert!(
        String::from_utf8_lossy(&repair.stdout).contains("1 identities written"),
        "{}",
        String::from_utf8_lossy(&repair.stdout)
    );
    let ca = "peerOrganizations/org1.example.com/ca/ca.org1.example.com-cert.pem";
    let ca_before = &first.iter().find(|(p, _)| p.ends_with(ca)).expect("ca").1;
    assert_eq!(&std::fs::read(out.join(ca)).expect("ca"), ca_before);
    SigningIdentity::load(&user.join("msp"), "Org1MSP").expect("restored identity loads");
}

#[test]
fn a_broken_spec_is_reported_with_file_and_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("network.yaml");
    std::fs::write(
        &spec,
        "name: n\norganizations:\n  - {name: Org1, mspId: Org1MSP, domain: org1.example.com}\n  - {name: Org2, mspId: Org1MSP, domain: org2.example.com}\norderers:\n  organization: {name: Orderer, mspId: OrdererMSP, domain: example.com}\n",
    )
    .expect("write spec");
    let output = weft(&[
        "cryptogen",
        "--spec",
        spec.to_str().expect("utf-8"),
        "--output",
        dir.path().join("o").to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("network.yaml: organizations[1].mspId: MSP ID \"Org1MSP\" is used twice"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("o").exists(),
        "nothing is written for a broken spec"
    );
}

/// `weft channel genesis --spec`: a genesis block for any organisations, as
/// configtxgen makes one from a profile — the channel's members, the orderer
/// organisation, a consenter per Raft node and the batch settings of the
/// spec.
#[test]
fn channel_genesis_follows_a_spec_with_any_organisations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("network.yaml");
    std::fs::write(
        &spec,
        "name: three\n\
         organizations:\n\
         \x20 - {name: Org1, mspId: Org1MSP, domain: org1.example.com}\n\
         \x20 - {name: Org2, mspId: Org2MSP, domain: org2.example.com}\n\
         \x20 - {name: Org3, mspId: Org3MSP, domain: org3.example.com}\n\
         orderers:\n\
         \x20 organization: {name: Orderer, mspId: OrdererMSP, domain: example.com}\n\
         \x20 nodes: 3\n\
         \x20 ports: [7050, 8050, 9050]\n\
         \x20 batchTimeout: 500ms\n\
         channels:\n\
         \x20 - name: mychannel\n\
         \x20 - {name: trade, organizations: [Org1, Org3]}\n",
    )
    .expect("spec");
    let organizations = dir.path().join("organizations");
    let spec_arg = spec.to_str().expect("utf-8");
    let orgs_arg = organizations.to_str().expect("utf-8");
    let made = weft(&["cryptogen", "--spec", spec_arg, "--output", orgs_arg]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let block_file = dir.path().join("trade.block");
    let written = weft(&[
        "channel",
        "genesis",
        "--spec",
        spec_arg,
        "--channelID",
        "trade",
        "--organizations",
        orgs_arg,
        "--outputBlock",
        block_file.to_str().expect("utf-8"),
    ]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let stdout = String::from_utf8_lossy(&written.stdout);
    assert!(
        stdout.contains("Org1MSP, Org3MSP; 3 consenters"),
        "{stdout}"
    );
    let bytes = std::fs::read(&block_file).expect("block");
    let block = <weft_protos::common::Block as weft_protos::Message>::decode(bytes.as_slice())
        .expect("a block");
    let config = weft_channel::ChannelConfig::from_block(&block).expect("channel config");
    assert_eq!(config.channel_id, "trade");
    let mut members = config.application_orgs.clone();
    members.sort();
    assert_eq!(members, vec!["Org1MSP", "Org3MSP"]);
    assert_eq!(config.consenters.len(), 3);
    assert_eq!(config.batch_timeout, std::time::Duration::from_millis(500));
}
