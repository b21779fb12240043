//! Genesis blocks round-trip into a `ChannelConfig` whose policies behave as
//! Fabric's test-network channel policies do.

use std::time::Duration;

use weft_channel::{BatchSettings, ChannelConfig, ConfigError, PolicyDenied, genesis_block};
use weft_crypto::Signer;
use weft_protos::Message;
use weft_protos::common::Block;
use weft_testkit::{ORGS, TestNetwork};

fn network() -> TestNetwork {
    TestNetwork::generate()
}

fn batch() -> BatchSettings {
    BatchSettings {
        max_message_count: 50,
        absolute_max_bytes: 1 << 20,
        preferred_max_bytes: 256 << 10,
        timeout: Duration::from_millis(100),
    }
}

fn consenters() -> [(&'static str, u32, u32); 3] {
    [
        ("127.0.0.1", 7050, 0),
        ("127.0.0.1", 7052, 1),
        ("127.0.0.1", 7054, 2),
    ]
}

#[test]
fn a_genesis_block_reads_back_into_the_profile() {
    let network = network();
    let block = genesis_block(&network.channel_profile("mychannel", &consenters(), batch()))
        .expect("genesis");
    let header = block.header.as_ref().expect("header");
    assert_eq!(header.number, 0);
    assert!(header.previous_hash.is_empty());

    // What goes over the wire and into a file parses the same.
    let block = Block::decode(block.encode_to_vec().as_slice()).expect("decode");
    let config = ChannelConfig::from_block(&block).expect("config");
    assert_eq!(config.channel_id, "mychannel");
    assert_eq!(config.consensus_type, "etcdraft");
    assert_eq!(config.batch_size.max_message_count, 50);
    assert_eq!(config.batch_size.absolute_max_bytes, 1 << 20);
    assert_eq!(config.batch_size.preferred_max_bytes, 256 << 10);
    assert_eq!(config.batch_timeout, Duration::from_millis(100));
    assert_eq!(
        config
            .consenters
            .iter()
            .map(|c| (c.id, c.endpoint()))
            .collect::<Vec<_>>(),
        vec![
            (1, "127.0.0.1:7050".to_owned()),
            (2, "127.0.0.1:7052".to_owned()),
            (3, "127.0.0.1:7054".to_owned())
        ]
    );
    assert_eq!(config.application_orgs, vec!["Org1MSP", "Org2MSP"]);
    assert_eq!(
        config.orderer_endpoints.get("OrdererMSP").map(Vec::len),
        Some(3)
    );
    for path in [
        "/Channel/Readers",
        "/Channel/Writers",
        "/Channel/Admins",
        "/Channel/Application/Endorsement",
        "/Channel/Application/LifecycleEndorsement",
        "/Channel/Application/Org1MSP/Admins",
        "/Channel/Orderer/BlockValidation",
    ] {
        assert!(config.policies.contains(path), "{path}");
    }
}

#[test]
fn channel_policies_admit_and_refuse_as_fabric_does() {
    let network = network();
    let block = genesis_block(&network.channel_profile("mychannel", &consenters(), batch()))
        .expect("genesis");
    let config = ChannelConfig::from_block(&block).expect("config");
    let data = b"a broadcast payload";
    let check = |path: &str, signer: &weft_material::SigningIdentity| {
        let signature = signer.sign(data).expect("sign");
        config
            .authorize(path, &signer.serialized(), data, &signature, network.now)
            .map(|_| ())
    };
    let user = network.user(ORGS[0].0, "User1", ORGS[0].1);
    let peer = network.peer(ORGS[1].0, ORGS[1].1);
    let orderer = network.orderer(0);

    assert_eq!(check("/Channel/Writers", &user), Ok(()));
    assert_eq!(check("/Channel/Readers", &user), Ok(()));
    // A peer reads but does not write (Writers is admin or client).
    assert_eq!(check("/Channel/Readers", &peer), Ok(()));
    assert_eq!(
        check("/Channel/Writers", &peer),
        Err(PolicyDenied::NotSatisfied("/Channel/Writers".into()))
    );
    // An orderer writes through the Orderer group and may sign blocks.
    assert_eq!(check("/Channel/Writers", &orderer), Ok(()));
    assert_eq!(check("/Channel/Orderer/BlockValidation", &orderer), Ok(()));
    assert!(check("/Channel/Orderer/BlockValidation", &user).is_err());
    // MAJORITY Admins of two application orgs and one orderer org needs both.
    assert!(check("/Channel/Application/Admins", &user).is_err());
    assert_eq!(
        check("/Channel/NoSuchPolicy", &user),
        Err(PolicyDenied::UnknownPolicy("/Channel/NoSuchPolicy".into()))
    );

    // A signature over other bytes, and an identity of no channel MSP.
    let signature = user.sign(b"something else").expect("sign");
    assert!(matches!(
        config.authorize(
            "/Channel/Writers",
            &user.serialized(),
            data,
            &signature,
            network.now
        ),
        Err(PolicyDenied::Signature(_))
    ));
    let stranger = TestNetwork::generate().user(ORGS[0].0, "User1", ORGS[0].1);
    let signature = stranger.sign(data).expect("sign");
    assert!(matches!(
        config.authorize(
            "/Channel/Writers",
            &stranger.serialized(),
            data,
            &signature,
            network.now
        ),
        Err(PolicyDenied::Identity(_))
    ));
}

#[test]
fn bad_profiles_and_blocks_are_refused_with_a_reason() {
    let network = network();
    let mut profile = network.channel_profile("MyChannel", &consenters(), batch());
    let error = genesis_block(&profile).expect_err("upper case channel id");
    assert!(error.to_string().contains("MyChannel"), "{error}");

    profile.channel_id = "mychannel".into();
    profile.application_orgs[0].msp_id = "Org1MSP') OR ('x".into();
    let error = genesis_block(&profile).expect_err("msp id with quotes");
    assert!(matches!(error, ConfigError::Msp { .. }), "{error}");

    let mut profile = network.channel_profile("mychannel", &consenters(), batch());
    profile.batch.preferred_max_bytes = profile.batch.absolute_max_bytes + 1;
    let error = genesis_block(&profile).expect_err("preferred above absolute");
    assert!(error.to_string().contains("BatchSize"), "{error}");

    let mut profile = network.channel_profile("mychannel", &[], batch());
    profile.consenters.clear();
    let error = genesis_block(&profile).expect_err("no consenters");
    assert!(error.to_string().contains("consenter"), "{error}");

    // A data block is not a config block.
    let block = weft_protoutil::new_block(1, vec![1; 32], vec![b"not a config".to_vec()]);
    assert!(ChannelConfig::from_block(&block).is_err());
    let block = weft_protoutil::new_block(1, vec![1; 32], vec![Vec::new(), Vec::new()]);
    assert!(matches!(
        ChannelConfig::from_block(&block),
        Err(ConfigError::NotConfig(_))
    ));
}

#[test]
fn orderer_block_signatures_verify_and_tampering_is_caught() {
    let network = network();
    let genesis = genesis_block(&network.channel_profile("mychannel", &consenters(), batch()))
        .expect("genesis");
    let config = ChannelConfig::from_block(&genesis).expect("config");
    let previous = weft_protoutil::block_header_hash(genesis.header.as_ref().expect("header"));
    let orderer = network.orderer(1);
    let mut block = weft_protoutil::new_block(1, previous.to_vec(), vec![b"envelope".to_vec()]);
    weft_channel::sign_block(
        &mut block,
        &orderer,
        orderer.serialized(),
        vec![7; 24],
        0,
        Vec::new(),
    )
    .expect("sign");
    assert_eq!(
        weft_channel::verify_block_signatures(&config, &block, network.now),
        Ok(())
    );

    // Another header (as if the block were renumbered) breaks the signature.
    let mut moved = block.clone();
    moved.header.as_mut().expect("header").number = 2;
    assert!(matches!(
        weft_channel::verify_block_signatures(&config, &moved, network.now),
        Err(PolicyDenied::Signature(_))
    ));
    // A client of an application org may not sign blocks.
    let user = network.user(ORGS[0].0, "User1", ORGS[0].1);
    let mut forged = weft_protoutil::new_block(1, previous.to_vec(), vec![b"envelope".to_vec()]);
    weft_channel::sign_block(
        &mut forged,
        &user,
        user.serialized(),
        vec![7; 24],
        0,
        Vec::new(),
    )
    .expect("sign");
    assert_eq!(
        weft_channel::verify_block_signatures(&config, &forged, network.now),
        Err(PolicyDenied::NotSatisfied(
            weft_channel::BLOCK_VALIDATION_POLICY.into()
        ))
    );
    // An unsigned block is refused.
    let unsigned = weft_protoutil::new_block(1, previous.to_vec(), vec![b"envelope".to_vec()]);
    assert!(weft_channel::verify_block_signatures(&config, &unsigned, network.now).is_err());
}
