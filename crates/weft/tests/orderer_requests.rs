//! Broadcast and Deliver against a real single-node orderer: every bad
//! request gets Fabric's status and the orderer keeps serving; Deliver's seek
//! positions, stop positions and behaviours; admin errors.

mod support;

use std::time::Duration;

use support::{Cluster, envelopes};
use weft_channel::BatchSettings;
use weft_crypto::Signer;
use weft_node::seek::{seek_envelope, specified};
use weft_protos::Message;
use weft_protos::common::{ChannelHeader, Envelope, HeaderType, Payload};
use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use weft_protos::orderer::deliver_response::Type as DeliverType;
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_protos::orderer::{SeekNewest, SeekNextCommit, SeekOldest, SeekPosition, seek_position};
use weft_testkit::{ORGS, TestNetwork};

const CHANNEL: &str = "mychannel";
const SUCCESS: i32 = 200;
const BAD_REQUEST: i32 = 400;
const FORBIDDEN: i32 = 403;
const NOT_FOUND: i32 = 404;

/// Blocks of at most 5 envelopes (32 KiB preferred, 64 KiB at most),
/// cut after `timeout` at the latest.
fn five_per_block(timeout: Duration) -> BatchSettings {
    BatchSettings {
        max_message_count: 5,
        absolute_max_bytes: 64 << 10,
        preferred_max_bytes: 32 << 10,
        timeout,
    }
}

/// One orderer cutting blocks as Fabric does (MaxMessageCount 5, or the
/// 50 ms BatchTimeout), so block boundaries are known.
fn single_node() -> Cluster {
    let cluster = Cluster::start_with(1, "", "block_cutting: timeout\n");
    cluster.join_all(CHANNEL, five_per_block(Duration::from_millis(50)));
    cluster.wait_for_leader(CHANNEL, &[0]);
    cluster
}

/// Re-signs an envelope whose payload was changed, as `signer`.
fn resign(payload: &Payload, signer: &weft_material::SigningIdentity) -> Vec<u8> {
    let payload = payload.encode_to_vec();
    let signature = signer.sign(&payload).expect("sign");
    Envelope { payload, signature }.encode_to_vec()
}

#[test]
fn broadcast_answers_each_bad_request_with_fabrics_status_and_keeps_serving() {
    let cluster = single_node();
    let mut submitter = cluster.network.submitter(CHANNEL);
    let user = cluster.network.user(ORGS[0].0, "User1", ORGS[0].1);
    let (_, good) = envelopes(&mut submitter, 1, 1, 1024).remove(0);
    let good_envelope = Envelope::decode(good.as_slice()).expect("envelope");
    let good_payload = Payload::decode(good_envelope.payload.as_slice()).expect("payload");

    let with_header = |edit: &dyn Fn(&mut ChannelHeader)| {
        let mut payload = good_payload.clone();
        let header = payload.header.as_mut().expect("header");
        let mut channel_header =
            ChannelHeader::decode(header.channel_header.as_slice()).expect("ch");
        edit(&mut channel_header);
        header.channel_header = channel_header.encode_to_vec();
        resign(&payload, &user)
    };
    let mut bad_signature = good_envelope.clone();
    bad_signature.signature[10] ^= 1;
    // The same payload claimed and signed by another creator.
    let as_creator = |signer: &weft_material::SigningIdentity| {
        let mut payload = good_payload.clone();
        payload.header.as_mut().expect("header").signature_header =
            weft_protos::common::SignatureHeader {
                creator: signer.serialized(),
                nonce: vec![9; 24],
            }
            .encode_to_vec();
        resign(&payload, signer)
    };
    let stranger = TestNetwork::generate().user(ORGS[0].0, "User1", ORGS[0].1);
    let peer = cluster.network.peer(ORGS[0].0, ORGS[0].1);
    let (_, oversized) = envelopes(&mut submitter, 2, 1, 100 << 10).remove(0);

    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        (
            "garbage payload",
            Envelope {
                payload: vec![0xff; 40],
                signature: vec![1],
            }
            .encode_to_vec(),
            BAD_REQUEST,
        ),
        (
            "empty payload",
            Envelope::default().encode_to_vec(),
            BAD_REQUEST,
        ),
        (
            "unknown channel",
            with_header(&|h| h.channel_id = "nosuchchannel".into()),
            NOT_FOUND,
        ),
        (
            "config update",
            with_header(&|h| h.r#type = HeaderType::ConfigUpdate as i32),
            BAD_REQUEST,
        ),
        (
            "deliver seek sent to broadcast",
            with_header(&|h| h.r#type = HeaderType::DeliverSeekInfo as i32),
            BAD_REQUEST,
        ),
        ("bad signature", bad_signature.encode_to_vec(), FORBIDDEN),
        (
            "identity of another network",
            as_creator(&stranger),
            FORBIDDEN,
        ),
        ("peer is not a channel writer", as_creator(&peer), FORBIDDEN),
        ("over AbsoluteMaxBytes", oversized, BAD_REQUEST),
        ("valid", good, SUCCESS),
    ];
    let statuses = cluster.broadcast(0, cases.iter().map(|(_, e, _)| e.clone()).collect());
    for ((name, _, expected), status) in cases.iter().zip(&statuses) {
        assert_eq!(status, expected, "{name}");
    }
    // Only the valid envelope was ordered.
    let height = cluster.height(0, CHANNEL).expect("height");
    let blocks = cluster.blocks(0, CHANNEL, height).expect("blocks");
    assert_eq!(support::tx_counts(&blocks).len(), 1);
}

/// A Broadcast message over the 100 MiB gRPC bound gets a status naming
/// the bound (not a dropped connection), and the orderer keeps serving.
#[test]
fn a_message_over_the_grpc_bound_gets_a_clear_status() {
    let cluster = single_node();
    let mut submitter = cluster.network.submitter(CHANNEL);
    let tls = cluster.tls();
    let endpoint = cluster.endpoint(0);
    let huge = Envelope {
        payload: vec![7; weft_node::MAX_GRPC_MESSAGE + 1],
        signature: vec![1],
    };
    let (broadcast, deliver) = cluster.block_on(async {
        let client = AtomicBroadcastClient::new(tls.channel(&endpoint).expect("channel"))
            .max_encoding_message_size(usize::MAX);
        let broadcast = match client
            .clone()
            .broadcast(tokio_stream::once(huge.clone()))
            .await
        {
            Err(status) => status,
            Ok(response) => response.into_inner().message().await.expect_err("refused"),
        };
        let deliver = match client.clone().deliver(tokio_stream::once(huge)).await {
            Err(status) => status,
            Ok(response) => response.into_inner().message().await.expect_err("refused"),
        };
        (broadcast, deliver)
    });
    for refused in [broadcast, deliver] {
        assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
        assert!(
            refused
                .message()
                .contains(&weft_node::MAX_GRPC_MESSAGE.to_string()),
            "{refused:?}"
        );
    }
    let (_, good) = envelopes(&mut submitter, 3, 1, 100).remove(0);
    assert_eq!(cluster.broadcast(0, vec![good]), vec![SUCCESS]);
}

/// Runs one seek request; returns the block numbers received and the final status.
fn seek(
    cluster: &Cluster,
    signer: &weft_material::SigningIdentity,
    channel: &str,
    start: SeekPosition,
    stop: SeekPosition,
    behavior: SeekBehavior,
) -> (Vec<u64>, Option<i32>) {
    let envelope = seek_envelope(signer, channel, start, stop, behavior).expect("seek envelope");
    let (tls, endpoint) = (cluster.tls(), cluster.endpoint(0));
    cluster.block_on(async move {
        let mut client = AtomicBroadcastClient::new(tls.channel(&endpoint).expect("channel"));
        let mut stream = client
            .deliver(tokio_stream::once(envelope))
            .await
            .expect("deliver")
            .into_inner();
        let mut numbers = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
                Ok(Ok(Some(response))) => match response.r#type {
                    Some(DeliverType::Block(block)) => {
                        numbers.push(block.header.expect("header").number)
                    }
                    Some(DeliverType::Status(status)) => return (numbers, Some(status)),
                    None => {}
                },
                _ => return (numbers, None),
            }
        }
    })
}

fn position(kind: seek_position::Type) -> SeekPosition {
    SeekPosition { r#type: Some(kind) }
}

#[test]
fn deliver_follows_seek_positions_behaviours_and_the_readers_policy() {
    let cluster = single_node();
    let mut submitter = cluster.network.submitter(CHANNEL);
    // Five blocks of five envelopes each (MaxMessageCount 5).
    let batch: Vec<Vec<u8>> = envelopes(&mut submitter, 1, 25, 512)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert!(cluster.broadcast(0, batch).iter().all(|&s| s == SUCCESS));
    let height = cluster.height(0, CHANNEL).expect("height");
    assert_eq!(height, 6);
    let reader = cluster.network.peer(ORGS[1].0, ORGS[1].1);
    let oldest = || position(seek_position::Type::Oldest(SeekOldest {}));
    let newest = || position(seek_position::Type::Newest(SeekNewest {}));
    let next_commit = || position(seek_position::Type::NextCommit(SeekNextCommit {}));
    let fail = SeekBehavior::FailIfNotReady;
    let block = SeekBehavior::BlockUntilReady;

    assert_eq!(
        seek(&cluster, &reader, CHANNEL, oldest(), newest(), fail),
        ((0..6).collect(), Some(SUCCESS))
    );
    assert_eq!(
        seek(&cluster, &reader, CHANNEL, specified(2), specified(4), fail),
        (vec![2, 3, 4], Some(SUCCESS))
    );
    assert_eq!(
        seek(&cluster, &reader, CHANNEL, newest(), newest(), fail),
        (vec![5], Some(SUCCESS))
    );
    // Past the end: FAIL_IF_NOT_READY answers NOT_FOUND after what exists.
    assert_eq!(
        seek(&cluster, &reader, CHANNEL, specified(4), specified(9), fail),
        (vec![4, 5], Some(NOT_FOUND))
    );
    assert_eq!(
        seek(&cluster, &reader, CHANNEL, specified(4), specified(2), fail),
        (vec![], Some(BAD_REQUEST))
    );
    assert_eq!(
        seek(&cluster, &reader, "nosuchchannel", oldest(), newest(), fail),
        (vec![], Some(NOT_FOUND))
    );
    let stranger = TestNetwork::generate().peer(ORGS[0].0, ORGS[0].1);
    assert_eq!(
        seek(&cluster, &stranger, CHANNEL, oldest(), newest(), fail),
        (vec![], Some(FORBIDDEN))
    );

    // BLOCK_UNTIL_READY from the next commit waits for the next block.
    let (tls, endpoint) = (cluster.tls(), cluster.endpoint(0));
    let more: Vec<Vec<u8>> = envelopes(&mut submitter, 2, 5, 512)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let waiter = {
        let envelope =
            seek_envelope(&reader, CHANNEL, next_commit(), specified(6), block).expect("seek");
        cluster.spawn(async move {
            let mut client = AtomicBroadcastClient::new(tls.channel(&endpoint).expect("channel"));
            let mut stream = client
                .deliver(tokio_stream::once(envelope))
                .await
                .expect("deliver")
                .into_inner();
            let mut got = Vec::new();
            while let Ok(Some(response)) = stream.message().await {
                match response.r#type {
                    Some(DeliverType::Block(b)) => got.push(b.header.expect("header").number),
                    Some(DeliverType::Status(s)) => return (got, s),
                    None => {}
                }
            }
            (got, 0)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "the seek must wait for block 6");
    assert!(cluster.broadcast(0, more).iter().all(|&s| s == SUCCESS));
    let (got, status) = cluster.block_on(waiter).expect("waiter");
    assert_eq!((got, status), (vec![6], SUCCESS));
}

#[test]
fn admin_requests_are_checked() {
    let cluster = single_node();
    // Joining twice, a non-genesis block, and an unknown channel.
    let block = cluster.dir.path().join(format!("{CHANNEL}.block"));
    let error = cluster
        .osnadmin(
            0,
            &[
                "join",
                "--channelID",
                CHANNEL,
                "--config-block",
                support::path_str(&block),
            ],
        )
        .expect_err("joined twice");
    assert!(error.contains("already exists"), "{error}");
    let garbage = cluster.dir.path().join("garbage.block");
    std::fs::write(&garbage, b"not a block").expect("write");
    let error = cluster
        .osnadmin(
            0,
            &[
                "join",
                "--channelID",
                "x",
                "--config-block",
                support::path_str(&garbage),
            ],
        )
        .expect_err("garbage");
    assert!(error.contains("block"), "{error}");
    let error = cluster
        .osnadmin(0, &["remove", "--channelID", "nosuchchannel"])
        .expect_err("unknown");
    assert!(error.contains("does not exist"), "{error}");

    // A genesis block naming other consenters is refused by this orderer.
    let other = TestNetwork::generate();
    let profile = other.channel_profile(
        "otherchannel",
        &[("127.0.0.1", 1, 0)],
        BatchSettings::default(),
    );
    let foreign = cluster.dir.path().join("foreign.block");
    std::fs::write(
        &foreign,
        weft_channel::genesis_block(&profile)
            .expect("genesis")
            .encode_to_vec(),
    )
    .expect("write");
    let error = cluster
        .osnadmin(
            0,
            &[
                "join",
                "--channelID",
                "otherchannel",
                "--config-block",
                support::path_str(&foreign),
            ],
        )
        .expect_err("not a consenter");
    assert!(error.contains("not a consenter"), "{error}");

    // Without a client certificate the admin service refuses.
    let tls_dir = cluster
        .network
        .orderer_org_dir()
        .join("users/Admin@example.com/tls");
    let output = std::process::Command::new(support::WEFT)
        .args([
            "osnadmin",
            "channel",
            "list",
            "-o",
            &cluster.endpoint(0),
            "--ca-file",
        ])
        .arg(tls_dir.join("ca.crt"))
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("client-cert"));
}

#[test]
fn weft_channel_genesis_writes_a_joinable_block() {
    let network = TestNetwork::generate();
    let dir = tempfile::tempdir().expect("dir");
    let output = dir.path().join("mychannel.block");
    let status = std::process::Command::new(support::WEFT)
        .args([
            "channel",
            "genesis",
            "--channelID",
            "mychannel",
            "--organizations",
        ])
        .arg(network.root())
        .args([
            "--consenter",
            "127.0.0.1:7050",
            "--consenter",
            "127.0.0.1:7051",
        ])
        .args([
            "--batch-timeout",
            "250ms",
            "--max-message-count",
            "100",
            "--outputBlock",
        ])
        .arg(&output)
        .status()
        .expect("run");
    assert!(status.success());
    let block =
        weft_protos::common::Block::decode(std::fs::read(&output).expect("read").as_slice())
            .expect("block");
    let config = weft_channel::ChannelConfig::from_block(&block).expect("config");
    assert_eq!(config.channel_id, "mychannel");
    assert_eq!(config.batch_timeout, Duration::from_millis(250));
    assert_eq!(config.batch_size.max_message_count, 100);
    let endpoints: Vec<String> = config.consenters.iter().map(|c| c.endpoint()).collect();
    assert_eq!(endpoints, ["127.0.0.1:7050", "127.0.0.1:7051"]);
    // Consenter 2 carries orderer2's TLS certificate.
    let orderer2 = std::fs::read(network.orderer_dir(1).join("tls/server.crt")).expect("cert");
    assert_eq!(config.consenters[1].server_tls_cert, orderer2);

    let bad = std::process::Command::new(support::WEFT)
        .args(["channel", "genesis", "--organizations"])
        .arg(network.root())
        .args(["--consenter", "nohostport", "--outputBlock"])
        .arg(dir.path().join("x.block"))
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected host:port"));
}

/// An idle leader cuts a block as soon as an envelope arrives instead of
/// waiting out BatchTimeout (adaptive cutting, the default), and a burst
/// still becomes blocks within MaxMessageCount; with Fabric's cutting the
/// same burst fills blocks of exactly MaxMessageCount (see
/// `deliver_follows_seek_positions_behaviours_and_the_readers_policy`).
#[test]
fn an_idle_leader_cuts_at_once_and_a_burst_still_fills_blocks() {
    let cluster = Cluster::start(3, "");
    // BatchTimeout longer than broadcast's 30 s bound: only an adaptive cut
    // answers within it.
    cluster.join_all(CHANNEL, five_per_block(Duration::from_secs(120)));
    let leader = cluster.wait_for_leader(CHANNEL, &[0, 1, 2]);
    let mut submitter = cluster.network.submitter(CHANNEL);
    let one: Vec<Vec<u8>> = envelopes(&mut submitter, 7, 1, 512)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(cluster.broadcast(leader, one), vec![SUCCESS]);
    assert_eq!(cluster.height(leader, CHANNEL), Some(2));

    let burst: Vec<Vec<u8>> = envelopes(&mut submitter, 8, 23, 512)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert!(
        cluster
            .broadcast(leader, burst)
            .iter()
            .all(|&s| s == SUCCESS)
    );
    let height = cluster.height(leader, CHANNEL).expect("height");
    let blocks = cluster.blocks(leader, CHANNEL, height).expect("blocks");
    let sizes: Vec<usize> = blocks[1..]
        .iter()
        .map(|b| support::tx_ids(b).len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 24, "{sizes:?}");
    assert!(sizes.iter().all(|&n| (1..=5).contains(&n)), "{sizes:?}");
}
