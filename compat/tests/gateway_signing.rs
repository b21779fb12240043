//! weft's ECDSA handling against the official Node client, in both directions:
//! a proposal built and signed by `@hyperledger/fabric-gateway` validates in
//! weft's MSP, and weft's signatures verify with the curve library that
//! client's signer uses, under Fabric's low-S rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use weft_compat::{hex, json_string, node_packages, run, unhex};
use weft_crypto::{Sha256, SignatureError, Signer, high_s_twin};
use weft_material::{SigningIdentity, layout};
use weft_msp::{MspManagerConfig, MspRole, NodeRole, Principal};
use weft_protos::Message;
use weft_protos::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use weft_protos::gateway::ProposedTransaction;
use weft_protos::protos::{ChaincodeInvocationSpec, ChaincodeProposalPayload, Proposal};
use weft_testkit::TestNetwork;

/// User1 of Org1MSP's MSP directory.
fn user_msp(network: &TestNetwork) -> PathBuf {
    layout::user_dir(
        &network.org_dir("org1.example.com"),
        "User1",
        "org1.example.com",
    )
    .join("msp")
}

fn node(args: &[&str]) -> String {
    let dir = node_packages().expect("npm packages");
    let output = run(Command::new("node")
        .arg(dir.join("node/gateway-signing.mjs"))
        .args(args)
        .current_dir(&dir))
    .expect("node");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_proposal_signed_by_the_official_client_validates_in_weft() {
    let material = TestNetwork::generate();
    let msp = user_msp(&material);
    let out = node(&[
        "propose",
        path(&msp.join("signcerts/cert.pem")),
        path(&msp.join("keystore/priv_sk")),
        "Org1MSP",
    ]);
    let proposed = ProposedTransaction::decode(
        unhex(&json_string(&out, "proposedTransaction").expect("field"))
            .expect("hex")
            .as_slice(),
    )
    .expect("ProposedTransaction");
    let client_tx_id = json_string(&out, "transactionId").expect("tx id");
    let signed = proposed.proposal.expect("signed proposal");

    let proposal = Proposal::decode(signed.proposal_bytes.as_slice()).expect("Proposal");
    let header = Header::decode(proposal.header.as_slice()).expect("Header");
    let channel_header =
        ChannelHeader::decode(header.channel_header.as_slice()).expect("ChannelHeader");
    let signature_header =
        SignatureHeader::decode(header.signature_header.as_slice()).expect("SignatureHeader");
    assert_eq!(channel_header.channel_id, "mychannel");
    assert_eq!(
        channel_header.r#type,
        HeaderType::EndorserTransaction as i32
    );

    // Transaction id = hex(SHA-256(nonce ‖ creator)), as weft's endorser will check it.
    let mut hash = Sha256::new();
    hash.update(&signature_header.nonce)
        .update(&signature_header.creator);
    assert_eq!(signature_header.nonce.len(), 24);
    assert_eq!(hex(&hash.finish()), channel_header.tx_id);
    assert_eq!(channel_header.tx_id, client_tx_id);
    assert_eq!(proposed.transaction_id, client_tx_id);

    let payload = ChaincodeProposalPayload::decode(proposal.payload.as_slice()).expect("payload");
    let invocation = ChaincodeInvocationSpec::decode(payload.input.as_slice()).expect("invocation");
    let spec = invocation.chaincode_spec.expect("spec");
    assert_eq!(spec.chaincode_id.expect("id").name, "basic");
    assert_eq!(spec.input.expect("input").args[0], b"CreateAsset");

    // The creator is a client of Org1MSP, and its signature verifies.
    let identity = material
        .msp_manager(MspManagerConfig::default())
        .validate(&signature_header.creator, material.now)
        .expect("creator validates");
    assert_eq!(identity.role(), Some(NodeRole::Client));
    assert!(identity.satisfies(&Principal::role("Org1MSP", MspRole::Member)));
    identity
        .verify(&signed.proposal_bytes, &signed.signature)
        .expect("client signature verifies in weft");

    // And weft refuses the same signature over altered bytes, or in high-S form.
    let mut altered = signed.proposal_bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert_eq!(
        identity.verify(&altered, &signed.signature),
        Err(SignatureError::Mismatch)
    );
    let twin = high_s_twin(&signed.signature).expect("twin");
    assert_eq!(
        identity.verify(&signed.proposal_bytes, &twin),
        Err(SignatureError::HighS)
    );
}

#[test]
fn weft_signatures_verify_with_the_clients_curve_library_under_the_low_s_rule() {
    let material = TestNetwork::generate();
    let msp = user_msp(&material);
    let signer = SigningIdentity::load(&msp, "Org1MSP").expect("identity");
    let cert = msp.join("signcerts/cert.pem");
    let message = b"weft endorsement: proposal_response_payload || endorser";
    let verify = |msg: &[u8], sig: &[u8]| {
        let out = node(&["verify", path(&cert), &hex(msg), &hex(sig)]);
        assert!(out.contains("\"valid\""), "{out}");
        out.contains("\"valid\":true")
    };

    // Several signatures, since about half of raw ECDSA signatures are high-S.
    for i in 0..4u8 {
        let mut msg = message.to_vec();
        msg.push(i);
        let signature = signer.sign(&msg).expect("sign");
        assert!(
            verify(&msg, &signature),
            "weft signature {i} refused by the client's curve library"
        );
        assert!(
            !verify(&msg, &high_s_twin(&signature).expect("twin")),
            "high-S twin accepted"
        );
        let mut tampered = msg.clone();
        tampered[0] ^= 1;
        assert!(!verify(&tampered, &signature), "tampered message accepted");
    }
}
