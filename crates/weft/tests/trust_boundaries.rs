//! weft's trust boundaries tried as an attacker would, against real
//! `weft orderer` and `weft peer` processes: each attack is refused, nothing
//! on disk outside the nodes' own data changes, and the normal flow still
//! works afterwards.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use support::network::{CHANNEL, Network};
use tokio_stream::StreamExt;
use weft_crypto::Signer;
use weft_material::SigningIdentity;
use weft_node::proto::admin_client::AdminClient;
use weft_node::proto::admin_request::Body;
use weft_node::proto::{AdminRequest, ListRequest, SignedAdminRequest};
use weft_node::{AdminConnection, Tls, TlsFiles};
use weft_protos::Message;
use weft_protos::common::{Block, ChannelHeader, Envelope, Payload};
use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use weft_protos::orderer::deliver_response::Type as DeliverType;
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_protos::peer::chaincode_message::Type as CcType;
use weft_protos::peer::chaincode_support_client::ChaincodeSupportClient;
use weft_protos::peer::{ChaincodeId, ChaincodeMessage};

const BASIC: &str = "  - name: basic\n    launcher: { builtin: basic }\n";
const ANY: &str = "OR('Org1MSP.peer', 'Org2MSP.peer')";
const BAD_REQUEST: i32 = 400;

fn args(values: &[&str]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

fn tls(dir: &Path, cert: &str, key: &str, ca: &Path) -> Tls {
    Tls::load(&TlsFiles {
        cert: dir.join(cert),
        key: dir.join(key),
        root_cas: vec![ca.to_path_buf()],
    })
    .expect("tls files")
}

/// The TLS client files and MSP identity of `user` of peer org `i`.
fn org_user(network: &Network, i: usize, user: &str, server_ca: &Path) -> (Tls, SigningIdentity) {
    let domain = network.peers[i].domain;
    let home = network.org_dir(i).join(format!("users/{user}@{domain}"));
    let identity =
        SigningIdentity::load(&home.join("msp"), network.peers[i].msp_id).expect("identity");
    (
        tls(&home.join("tls"), "client.crt", "client.key", server_ca),
        identity,
    )
}

fn orderer_admin(network: &Network) -> (Tls, SigningIdentity) {
    let home = network
        .orderers
        .network
        .orderer_org_dir()
        .join("users/Admin@example.com");
    let identity = SigningIdentity::load(&home.join("msp"), "OrdererMSP").expect("identity");
    let tls_dir = home.join("tls");
    (
        tls(
            &tls_dir,
            "client.crt",
            "client.key",
            &tls_dir.join("ca.crt"),
        ),
        identity,
    )
}

fn orderer_ca(network: &Network) -> PathBuf {
    network
        .orderers
        .network
        .orderer_org_dir()
        .join("tlsca/tlsca.example.com-cert.pem")
}

/// A signed admin request with every field chosen by the caller.
fn crafted(
    identity: &SigningIdentity,
    timestamp_unix_ms: i64,
    nonce: Vec<u8>,
    tls_cert_pem: &[u8],
) -> SignedAdminRequest {
    let der = weft_crypto::pem::certificates(tls_cert_pem)
        .expect("pem")
        .remove(0);
    let request = AdminRequest {
        creator: identity.serialized(),
        timestamp_unix_ms,
        nonce,
        tls_cert_hash: weft_crypto::sha256(&der).to_vec(),
        body: Some(Body::List(ListRequest {})),
    }
    .encode_to_vec();
    let signature = identity.sign(&request).expect("sign");
    SignedAdminRequest { request, signature }
}

/// A TLS connection to `endpoint` that presents no client certificate.
async fn anonymous(endpoint: &str, server_ca: &Path) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("https://{endpoint}"))
        .expect("endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(server_ca).expect("ca"),
                ))
                .domain_name("127.0.0.1"),
        )
        .expect("tls")
        .connect()
        .await
        .expect("connect")
}

/// A TLS connection to `endpoint` presenting a self-signed client
/// certificate (as Fabric's Node SDK does); the certificate's PEM.
async fn self_signed(endpoint: &str, server_ca: &Path) -> (tonic::transport::Channel, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = rcgen::CertificateParams::new(vec!["fabric-sdk".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{endpoint}"))
        .expect("endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(server_ca).expect("ca"),
                ))
                .identity(tonic::transport::Identity::from_pem(
                    cert.pem(),
                    key.serialize_pem(),
                ))
                .domain_name("127.0.0.1"),
        )
        .expect("tls")
        .connect()
        .await
        .expect("the handshake succeeds with any client certificate");
    (channel, cert.pem().into_bytes())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn denied(result: Result<impl std::fmt::Debug, tonic::Status>, code: tonic::Code, says: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(says),
        "{status:?} should say {says}"
    );
}

#[test]
fn admin_services_admit_only_their_organisations_admins() {
    let network = Network::start(1, BASIC, &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let orderer = network.orderers.endpoint(0);
    let org1_ca = network.tls_ca(0);
    let (admin_tls, admin) = orderer_admin(&network);
    let admin = Arc::new(admin);
    runtime.block_on(async {
        // A plain user of a peer organisation, with its own valid TLS
        // certificate from a CA the orderer trusts, cannot list or remove.
        let (user_tls, user) = org_user(&network, 0, "User1", &orderer_ca(&network));
        let as_user = AdminConnection::new(&user_tls, &orderer, Arc::new(user)).expect("conn");
        denied(
            as_user.list().await,
            tonic::Code::PermissionDenied,
            "not an identity of OrdererMSP",
        );
        denied(
            as_user.remove(CHANNEL).await,
            tonic::Code::PermissionDenied,
            "OrdererMSP",
        );
        // Nor can it speak Raft to the orderer: only the channel's consenters may.
        let mut cluster = weft_orderer::proto::cluster_client::ClusterClient::new(
            user_tls.channel(&orderer).expect("channel"),
        );
        let vote = weft_orderer::proto::RaftRequest {
            channel: CHANNEL.into(),
            kind: weft_orderer::proto::RaftKind::Vote as i32,
            payload: Vec::new(),
        };
        denied(
            cluster.raft(vote).await,
            tonic::Code::PermissionDenied,
            "only consenters of channel",
        );
        // The orderer organisation's own node identity is not an admin either.
        let node = Arc::new(network.orderers.network.orderer(0));
        let as_node = AdminConnection::new(&admin_tls, &orderer, node).expect("conn");
        denied(
            as_node.remove(CHANNEL).await,
            tonic::Code::PermissionDenied,
            "is not an admin of OrdererMSP",
        );

        // The admin's requests cannot be replayed, delayed or moved to another connection.
        let mut raw = AdminClient::new(admin_tls.channel(&orderer).expect("channel"));
        let once = crafted(&admin, now_ms(), vec![7; 24], &admin_tls.cert_pem);
        raw.list(once.clone()).await.expect("a fresh admin request");
        denied(
            raw.list(once).await,
            tonic::Code::PermissionDenied,
            "replayed",
        );
        let stale = crafted(
            &admin,
            now_ms() - 20 * 60 * 1000,
            vec![8; 24],
            &admin_tls.cert_pem,
        );
        denied(raw.list(stale).await, tonic::Code::PermissionDenied, "old");
        let user_cert = std::fs::read(
            network
                .org_dir(0)
                .join("users/User1@org1.example.com/tls/client.crt"),
        )
        .expect("cert");
        let moved = crafted(&admin, now_ms(), vec![9; 24], &user_cert);
        denied(
            raw.list(moved).await,
            tonic::Code::PermissionDenied,
            "another TLS client certificate",
        );
        let short_nonce = crafted(&admin, now_ms(), vec![1; 4], &admin_tls.cert_pem);
        denied(
            raw.list(short_nonce).await,
            tonic::Code::InvalidArgument,
            "nonce",
        );
        let mut forged = crafted(&admin, now_ms(), vec![10; 24], &admin_tls.cert_pem);
        forged.signature[10] ^= 1;
        denied(
            raw.list(forged).await,
            tonic::Code::PermissionDenied,
            "signature",
        );

        // Without a TLS client certificate nothing is even considered.
        let anonymous_orderer = anonymous(&orderer, &orderer_ca(&network)).await;
        let request = crafted(&admin, now_ms(), vec![11; 24], &admin_tls.cert_pem);
        denied(
            AdminClient::new(anonymous_orderer).list(request).await,
            tonic::Code::Unauthenticated,
            "TLS client certificate",
        );

        // A self-signed TLS client certificate passes the handshake (Fabric's
        // SDKs present one), not the admin service: even an admin's
        // signature bound to it does not make it trusted.
        let (self_signed_orderer, cert) = self_signed(&orderer, &orderer_ca(&network)).await;
        let request = crafted(&admin, now_ms(), vec![13; 24], &cert);
        denied(
            AdminClient::new(self_signed_orderer).list(request).await,
            tonic::Code::Unauthenticated,
            "issued by a trusted CA",
        );

        // The orderer's admin still works, and the channel was never removed.
        let as_admin =
            AdminConnection::new(&admin_tls, &orderer, Arc::clone(&admin)).expect("conn");
        let channels = as_admin.list().await.expect("admin lists");
        assert_eq!(
            channels.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            [CHANNEL]
        );

        // A peer: channel list and info need an admin of the peer's own org.
        let peer = network.endpoint(0);
        let (org2_tls, org2_admin) = org_user(&network, 1, "Admin", &org1_ca);
        let foreign = AdminConnection::new(&org2_tls, &peer, Arc::new(org2_admin)).expect("conn");
        denied(
            foreign.list().await,
            tonic::Code::PermissionDenied,
            "Org1MSP",
        );
        let (user_tls, user) = org_user(&network, 0, "User1", &org1_ca);
        let as_user = AdminConnection::new(&user_tls, &peer, Arc::new(user)).expect("conn");
        denied(
            as_user.info(CHANNEL).await,
            tonic::Code::PermissionDenied,
            "is not an admin of Org1MSP",
        );
        let anonymous_peer = anonymous(&peer, &org1_ca).await;
        let request = crafted(&admin, now_ms(), vec![12; 24], &admin_tls.cert_pem);
        denied(
            AdminClient::new(anonymous_peer).list(request).await,
            tonic::Code::Unauthenticated,
            "TLS client certificate",
        );
        let (org1_tls, org1_admin) = org_user(&network, 0, "Admin", &org1_ca);
        let (self_signed_peer, cert) = self_signed(&peer, &org1_ca).await;
        let request = crafted(&org1_admin, now_ms(), vec![14; 24], &cert);
        denied(
            AdminClient::new(self_signed_peer.clone())
                .list(request)
                .await,
            tonic::Code::Unauthenticated,
            "issued by a trusted CA",
        );
        // The same connection serves what a channel member may ask: blocks.
        let (_, user) = org_user(&network, 0, "User1", &org1_ca);
        let seek = weft_node::seek::seek_envelope(
            &user,
            CHANNEL,
            weft_node::seek::specified(0),
            weft_node::seek::specified(0),
            SeekBehavior::BlockUntilReady,
        )
        .expect("seek");
        let mut blocks = weft_protos::peer::deliver_client::DeliverClient::new(self_signed_peer)
            .deliver(tokio_stream::iter([seek]))
            .await
            .expect("deliver over a self-signed client certificate")
            .into_inner();
        let first = blocks.message().await.expect("answer").expect("a message");
        assert!(
            matches!(
                first.r#type,
                Some(weft_protos::peer::deliver_response::Type::Block(_))
            ),
            "{first:?}"
        );
        let own = AdminConnection::new(&org1_tls, &peer, Arc::new(org1_admin)).expect("conn");
        assert_eq!(own.list().await.expect("own admin")[0].name, CHANNEL);
    });
    assert!(
        network.orderers.log(0).contains("admin remove from"),
        "refusals are logged"
    );
}

/// `block` with its channel header's channel id replaced (signatures do not
/// matter to a genesis block).
fn renamed(block: &Path, channel_id: &str) -> Vec<u8> {
    let mut block = Block::decode(std::fs::read(block).expect("block").as_slice()).expect("decode");
    let data = block.data.as_mut().expect("data");
    let mut envelope = Envelope::decode(data.data[0].as_slice()).expect("envelope");
    let mut payload = Payload::decode(envelope.payload.as_slice()).expect("payload");
    let header = payload.header.as_mut().expect("header");
    let mut channel_header = ChannelHeader::decode(header.channel_header.as_slice()).expect("ch");
    channel_header.channel_id = channel_id.to_owned();
    header.channel_header = channel_header.encode_to_vec();
    envelope.payload = payload.encode_to_vec();
    data.data[0] = envelope.encode_to_vec();
    block.encode_to_vec()
}

#[test]
fn hostile_channel_ids_and_snapshot_paths_never_reach_the_file_system() {
    let network = Network::start(1, BASIC, &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    // Directories an attacker would like deleted, beside and far from the nodes' data.
    let test_dir = network.orderers.dir.path().to_path_buf();
    let victims = [test_dir.join("victim"), test_dir.join("abs-victim")];
    for victim in &victims {
        std::fs::create_dir_all(victim).expect("victim");
        std::fs::write(victim.join("keep.txt"), b"precious").expect("write");
    }
    let orderer_data = support::data_dir(&network.orderers, 0);
    let relative = |from: &Path| {
        let depth = from
            .strip_prefix(&test_dir)
            .expect("under the test dir")
            .components()
            .count();
        format!("{}victim", "../".repeat(depth))
    };
    let absolute = victims[1].display().to_string();
    let (admin_tls, admin) = orderer_admin(&network);
    let org1_ca = network.tls_ca(0);
    let (peer_tls, peer_admin) = org_user(&network, 0, "Admin", &org1_ca);
    runtime.block_on(async {
        let orderer =
            AdminConnection::new(&admin_tls, &network.orderers.endpoint(0), Arc::new(admin))
                .expect("conn");
        let peer = AdminConnection::new(&peer_tls, &network.endpoint(0), Arc::new(peer_admin))
            .expect("conn");
        let peer_ledgers = network.data_dir(0).join("ledgers");
        for (name, id) in [
            ("relative (orderer)", relative(&orderer_data)),
            ("relative (peer)", relative(&peer_ledgers)),
            ("absolute", absolute.clone()),
            ("dot-dot", "..".to_owned()),
        ] {
            let block = renamed(&network.block, &id);
            for (node, result) in [
                ("orderer", orderer.join(block.clone()).await),
                ("peer", peer.join(block.clone()).await),
            ] {
                let status = result.expect_err(name);
                assert!(
                    status.message().contains("invalid channel id"),
                    "{node} {name}: {status:?}"
                );
            }
        }
        // joinbysnapshot reads only the peer's snapshot area.
        for path in [test_dir.join("victim"), PathBuf::from("/etc")] {
            let status = peer
                .join_by_snapshot(path.display().to_string())
                .await
                .expect_err("outside the snapshot area");
            assert!(
                status
                    .message()
                    .contains("outside this peer's snapshot area"),
                "{status:?}"
            );
        }
    });
    for victim in &victims {
        assert_eq!(
            std::fs::read(victim.join("keep.txt")).expect("kept"),
            b"precious"
        );
    }
    // Both nodes still serve the channel.
    assert!(network.orderers.height(0, CHANNEL).is_some());
    assert!(network.height(0).is_some());
}

/// A seek envelope for blocks 0..=0 whose channel header says `age_s` ago.
fn aged_seek(user: &SigningIdentity, age_s: i64) -> Envelope {
    let envelope = weft_node::seek::seek_envelope(
        user,
        CHANNEL,
        weft_node::seek::specified(0),
        weft_node::seek::specified(0),
        SeekBehavior::FailIfNotReady,
    )
    .expect("seek");
    let mut payload = Payload::decode(envelope.payload.as_slice()).expect("payload");
    let header = payload.header.as_mut().expect("header");
    let mut channel_header = ChannelHeader::decode(header.channel_header.as_slice()).expect("ch");
    channel_header
        .timestamp
        .as_mut()
        .expect("timestamp")
        .seconds -= age_s;
    header.channel_header = channel_header.encode_to_vec();
    let payload = payload.encode_to_vec();
    let signature = user.sign(&payload).expect("sign");
    Envelope { payload, signature }
}

#[test]
fn chaincode_cannot_be_impersonated_and_old_seeks_are_refused() {
    let network = Network::start(1, BASIC, &[("basic", "basic", ANY)]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let org1 = network.gateway(0, "User1");
    let created = runtime.block_on(org1.submit(
        CHANNEL,
        "basic",
        &args(&["CreateAsset", "a1", "blue", "5", "Tom", "100"]),
    ));
    let created_tx = created.expect("the built-in chaincode is live").tx_id;
    let peer = network.endpoint(0);
    let org1_ca = network.tls_ca(0);
    let register = |name: &str| ChaincodeMessage {
        r#type: CcType::Register as i32,
        payload: ChaincodeId {
            name: name.to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        ..Default::default()
    };
    // The chaincode's answer to a REGISTER over `tls`: the first message's
    // type and payload, or the call's refusal.
    let try_register = |tls: Tls, name: &'static str| {
        let peer = peer.clone();
        let message = register(name);
        async move {
            let channel = tls.connect(&peer).expect("channel");
            let mut client = ChaincodeSupportClient::new(channel);
            let mut stream = client
                .register(tokio_stream::iter(vec![message]).chain(tokio_stream::pending()))
                .await?
                .into_inner();
            let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("an answer")?
                .expect("a message");
            Ok::<_, tonic::Status>((
                first.r#type,
                String::from_utf8_lossy(&first.payload).into_owned(),
            ))
        }
    };
    let dev = network.orderers.dir.path().join("dev-credentials");
    runtime.block_on(async {
        // A user's TLS certificate, though from a trusted CA, is not a chaincode's.
        let (user_tls, _) = org_user(&network, 0, "User1", &org1_ca);
        denied(
            try_register(user_tls, "basic").await,
            tonic::Code::Unauthenticated,
            "issued to the chaincode",
        );
        // Neither is the peer's own.
        let node = network.org_dir(0).join("peers/peer0.org1.example.com/tls");
        let node_tls = tls(&node, "server.crt", "server.key", &org1_ca);
        denied(
            try_register(node_tls, "basic").await,
            tonic::Code::Unauthenticated,
            "issued to the chaincode",
        );
    });
    // An admin obtains dev-mode credentials for `basic` with the CLI ...
    let output = network.peer_command_as(
        0,
        "Admin",
        &[
            "chaincode",
            "dev-credentials",
            "basic",
            "--output",
            dev.to_str().expect("utf8"),
            "--client-cert",
            network
                .org_dir(0)
                .join("users/Admin@org1.example.com/tls/client.crt")
                .to_str()
                .expect("utf8"),
            "--client-key",
            network
                .org_dir(0)
                .join("users/Admin@org1.example.com/tls/client.key")
                .to_str()
                .expect("utf8"),
        ],
    );
    let exports = output.unwrap_or_else(|e| panic!("dev-credentials: {e}\n{}", network.log(0)));
    assert!(
        exports.contains("export CORE_TLS_CLIENT_CERT_FILE="),
        "{exports}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dev.join("client.key"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    // ... but a user may not.
    let user_tls = network.org_dir(0).join("users/User1@org1.example.com/tls");
    let never = network.orderers.dir.path().join("never");
    let refused = network
        .peer_command_as(
            0,
            "User1",
            &[
                "chaincode",
                "dev-credentials",
                "basic",
                "--output",
                never.to_str().expect("utf8"),
                "--client-cert",
                user_tls.join("client.crt").to_str().expect("utf8"),
                "--client-key",
                user_tls.join("client.key").to_str().expect("utf8"),
            ],
        )
        .expect_err("a user");
    assert!(refused.contains("is not an admin of Org1MSP"), "{refused}");
    assert!(!never.exists(), "nothing is written for a refused request");
    runtime.block_on(async {
        let dev_tls = tls(&dev, "client.crt", "client.key", &org1_ca);
        // Issued for `basic`, it cannot register another package ...
        let (kind, message) = try_register(dev_tls.clone(), "other")
            .await
            .expect("answered");
        assert_eq!(kind, CcType::Error as i32);
        assert!(
            message.contains("may not register as \"other\""),
            "{message}"
        );
        // ... nor replace the live `basic`.
        let (kind, message) = try_register(dev_tls, "basic").await.expect("answered");
        assert_eq!(kind, CcType::Error as i32);
        assert!(
            message.contains("already registered on a live stream"),
            "{message}"
        );
    });
    // Private data pushes: a recorded push replayed later, or a push for a
    // committed transaction, is refused (signed by a real peer of the channel).
    let committed_tx = created_tx;
    let org2_peer = network.orderers.network.peer("org2.example.com", "Org2MSP");
    runtime.block_on(async {
        let (user_tls, _) = org_user(&network, 0, "User1", &org1_ca);
        let mut client = weft_peer::proto::private_data_client::PrivateDataClient::new(
            user_tls.channel(&peer).expect("channel"),
        );
        let push = |tx_id: &str, age_ms: i64| {
            let payload = weft_peer::proto::PushPayload {
                channel: CHANNEL.into(),
                tx_id: tx_id.to_owned(),
                private_data: Vec::new(),
                timestamp_unix_ms: now_ms() - age_ms,
            }
            .encode_to_vec();
            weft_peer::proto::SignedMessage {
                signature: org2_peer.sign(&payload).expect("sign"),
                signer: org2_peer.serialized(),
                payload,
            }
        };
        denied(
            client.push(push(&"ab".repeat(32), 20 * 60 * 1000)).await,
            tonic::Code::PermissionDenied,
            "outside the node's window",
        );
        denied(
            client.push(push(&committed_tx, 0)).await,
            tonic::Code::FailedPrecondition,
            "already committed",
        );
        client
            .push(push(&"cd".repeat(32), 0))
            .await
            .expect("a fresh push for a pending transaction");
    });

    // The real chaincode still answers.
    let asset = runtime
        .block_on(org1.evaluate(CHANNEL, "basic", &args(&["ReadAsset", "a1"])))
        .expect("read");
    assert!(String::from_utf8_lossy(&asset).contains("\"Owner\":\"Tom\""));

    // Deliver refuses a seek request signed 20 minutes ago (Fabric's 15-minute window),
    // on the orderer and on the peer; a fresh one is served.
    let user = network
        .orderers
        .network
        .user("org1.example.com", "User1", "Org1MSP");
    let orderer = network.orderers.endpoint(0);
    let orderer_tls = network.orderers.tls();
    let (peer_tls, _) = org_user(&network, 0, "User1", &org1_ca);
    runtime.block_on(async {
        for age in [20 * 60, -20 * 60] {
            let mut client = AtomicBroadcastClient::new(orderer_tls.channel(&orderer).expect("ch"));
            let mut stream = client
                .deliver(tokio_stream::once(aged_seek(&user, age)))
                .await
                .expect("deliver")
                .into_inner();
            let first = stream.message().await.expect("answer").expect("message");
            assert_eq!(
                first.r#type,
                Some(DeliverType::Status(BAD_REQUEST)),
                "orderer, {age} s"
            );
            let mut events = weft_protos::peer::deliver_client::DeliverClient::new(
                peer_tls.channel(&peer).expect("ch"),
            );
            let mut stream = events
                .deliver(tokio_stream::once(aged_seek(&user, age)))
                .await
                .expect("deliver")
                .into_inner();
            let first = stream.message().await.expect("answer").expect("message");
            assert_eq!(
                first.r#type,
                Some(weft_protos::peer::deliver_response::Type::Status(
                    BAD_REQUEST
                )),
                "peer, {age} s"
            );
        }
        let mut client = AtomicBroadcastClient::new(orderer_tls.channel(&orderer).expect("ch"));
        let mut stream = client
            .deliver(tokio_stream::once(aged_seek(&user, 60)))
            .await
            .expect("deliver")
            .into_inner();
        let first = stream.message().await.expect("answer").expect("message");
        assert!(
            matches!(first.r#type, Some(DeliverType::Block(_))),
            "{first:?}"
        );
    });
}

/// The gateway tries every orderer of the channel, whatever the failure:
/// with the channel removed from one of three orderers (NOT_FOUND there),
/// every submit still commits through the other two.
#[test]
fn the_gateway_fails_over_on_any_ordering_failure() {
    let network = Network::start(3, BASIC, &[("basic", "basic", ANY)]);
    let removed = network
        .orderers
        .osnadmin(0, &["remove", "--channelID", CHANNEL])
        .expect("the orderer admin removes the channel from orderer 0");
    assert_eq!(removed["removed"], CHANNEL);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let org1 = network.gateway(0, "User1");
    // The gateway starts at a different orderer for each submit (round robin).
    for n in 0..9 {
        let id = format!("failover-{n}");
        runtime
            .block_on(org1.submit(
                CHANNEL,
                "basic",
                &args(&["CreateAsset", &id, "blue", "1", "Ann", "1"]),
            ))
            .unwrap_or_else(|e| panic!("submit {n}: {e}"));
    }
}

/// The block numbers a Deliver stream sent and the status it ended with;
/// `read` says which an answer is.
async fn delivered<T>(
    mut stream: tonic::Streaming<T>,
    read: impl Fn(T) -> Option<Result<u64, i32>>,
) -> (Vec<u64>, i32) {
    let mut blocks = Vec::new();
    while let Ok(Some(response)) = stream.message().await {
        match read(response) {
            Some(Ok(number)) => blocks.push(number),
            Some(Err(status)) => return (blocks, status),
            None => {}
        }
    }
    (blocks, 0)
}

/// A client identity of Org1 whose certificate expires `seconds` from now,
/// issued by Org1's CA (as a Fabric CA would), in an MSP directory under `dir`.
fn short_lived_user(network: &Network, dir: &Path, seconds: i64) -> SigningIdentity {
    let ca_dir = network.org_dir(0).join("ca");
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.org1.example.com-cert.pem")).expect("ca");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("priv_sk")).expect("key"))
            .expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::default();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(seconds);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "org1.example.com");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, "client");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Brief@org1.example.com");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let msp = dir.join("brief-msp");
    std::fs::create_dir_all(msp.join("signcerts")).expect("signcerts");
    std::fs::create_dir_all(msp.join("keystore")).expect("keystore");
    std::fs::write(msp.join("signcerts/cert.pem"), cert.pem()).expect("cert");
    std::fs::write(msp.join("keystore/priv_sk"), key.serialize_pem()).expect("key");
    SigningIdentity::load(&msp, "Org1MSP").expect("identity")
}

/// A signed seek of every block from the next commit on, waiting for each.
fn next_commits(user: &SigningIdentity) -> Envelope {
    weft_node::seek::seek_envelope(
        user,
        CHANNEL,
        weft_protos::orderer::SeekPosition {
            r#type: Some(weft_protos::orderer::seek_position::Type::NextCommit(
                weft_protos::orderer::SeekNextCommit {},
            )),
        },
        weft_node::seek::specified(u64::MAX),
        SeekBehavior::BlockUntilReady,
    )
    .expect("seek")
}

/// Long-lived event streams end once the requester's certificate expires,
/// on the peer and on the orderer; until then they deliver.
#[test]
fn event_streams_end_when_the_requesters_certificate_expires() {
    let network = Network::start(1, BASIC, &[("basic", "basic", ANY)]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let org1 = network.gateway(0, "User1");
    let brief = short_lived_user(&network, network.orderers.dir.path(), 6);
    let seek = || next_commits(&brief);
    let org1_ca = network.tls_ca(0);
    let (peer_tls, _) = org_user(&network, 0, "User1", &org1_ca);
    let peer = network.endpoint(0);
    let orderer = network.orderers.endpoint(0);
    let orderer_tls = network.orderers.tls();
    // Each stream: the block numbers it delivered, and the status it ended with.
    let peer_stream = runtime.spawn({
        let envelope = seek();
        let channel = peer_tls.channel(&peer).expect("channel");
        async move {
            let stream = weft_protos::peer::deliver_client::DeliverClient::new(channel)
                .deliver(tokio_stream::once(envelope))
                .await
                .expect("deliver")
                .into_inner();
            use weft_protos::peer::deliver_response::Type;
            delivered(stream, |r: weft_protos::peer::DeliverResponse| {
                match r.r#type {
                    Some(Type::Block(b)) => Some(Ok(b.header.expect("header").number)),
                    Some(Type::Status(s)) => Some(Err(s)),
                    _ => None,
                }
            })
            .await
        }
    });
    let orderer_stream = runtime.spawn({
        let envelope = seek();
        let channel = orderer_tls.channel(&orderer).expect("channel");
        async move {
            let stream = AtomicBroadcastClient::new(channel)
                .deliver(tokio_stream::once(envelope))
                .await
                .expect("deliver")
                .into_inner();
            delivered(stream, |r: weft_protos::orderer::DeliverResponse| {
                match r.r#type {
                    Some(DeliverType::Block(b)) => Some(Ok(b.header.expect("header").number)),
                    Some(DeliverType::Status(s)) => Some(Err(s)),
                    None => None,
                }
            })
            .await
        }
    });
    let submit = |id: &str| {
        runtime
            .block_on(org1.submit(
                CHANNEL,
                "basic",
                &args(&["CreateAsset", id, "blue", "1", "Ann", "1"]),
            ))
            .expect("submit")
            .block
    };
    let while_valid = submit("brief-1");
    std::thread::sleep(Duration::from_secs(7));
    let after_expiry = submit("brief-2");
    const FORBIDDEN: i32 = 403;
    for (node, stream) in [("peer", peer_stream), ("orderer", orderer_stream)] {
        let (blocks, status) = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), stream).await })
            .expect("the stream ended")
            .expect("task");
        assert!(blocks.contains(&while_valid), "{node}: {blocks:?}");
        assert!(!blocks.contains(&after_expiry), "{node}: {blocks:?}");
        assert_eq!(status, FORBIDDEN, "{node}");
    }
}

/// A CommitStatus for a transaction that never commits ends at the peer's
/// `limits.commit_status_timeout`, not never.
#[test]
fn commit_status_waits_at_most_the_peers_limit() {
    let mut network = Network::start(1, BASIC, &[]);
    let config = std::fs::read_to_string(&network.peers[0].config).expect("config");
    let config = config.replace(
        "  startup_timeout: 60s\n",
        "  startup_timeout: 60s\n  commit_status_timeout: 2s\n",
    );
    std::fs::write(&network.peers[0].config, config).expect("config");
    network.kill_peer(0);
    network.start_peer(0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let org1 = network.gateway(0, "User1");
    let started = std::time::Instant::now();
    let error = runtime
        .block_on(org1.commit_status(CHANNEL, &"ef".repeat(32)))
        .expect_err("never committed");
    assert!(
        error.to_string().contains("was not committed within 2 s"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// A connection that never finishes its handshake is closed after the
/// peer's `listener.handshake_timeout`, while a quiet Deliver stream (no
/// block for longer than `listener.idle_timeout`) stays open: the peer's
/// keepalive pings, answered by the client, count as activity.
#[test]
fn stalled_connections_are_closed_and_quiet_streams_stay_open() {
    let mut network = Network::start(1, BASIC, &[("basic", "basic", ANY)]);
    let config = std::fs::read_to_string(&network.peers[0].config).expect("config");
    assert!(!config.contains("listener:"), "{config}");
    let config = format!(
        "{config}listener:\n  handshake_timeout: 1s\n  keepalive_interval: 300ms\n  \
         keepalive_timeout: 500ms\n  idle_timeout: 2s\n"
    );
    std::fs::write(&network.peers[0].config, config).expect("config");
    network.kill_peer(0);
    network.start_peer(0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let peer = network.endpoint(0);

    // Connects, says nothing: closed by the peer.
    let silent = runtime.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut stream = tokio::net::TcpStream::connect(&peer)
            .await
            .expect("connect");
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(15), stream.read(&mut byte)).await
    });
    assert!(
        matches!(silent, Ok(Ok(0) | Err(_))),
        "a silent connection stays open: {silent:?}"
    );

    let org1 = network.gateway(0, "User1");
    let org1_ca = network.tls_ca(0);
    let (peer_tls, user) = org_user(&network, 0, "User1", &org1_ca);
    let envelope = next_commits(&user);
    let channel = peer_tls.channel(&peer).expect("channel");
    let mut stream = runtime
        .block_on(
            weft_protos::peer::deliver_client::DeliverClient::new(channel)
                .deliver(tokio_stream::once(envelope)),
        )
        .expect("deliver")
        .into_inner();
    // Quiet for more than twice the idle timeout.
    std::thread::sleep(Duration::from_secs(5));
    let committed = runtime
        .block_on(org1.submit(
            CHANNEL,
            "basic",
            &args(&["CreateAsset", "quiet-1", "blue", "1", "Ann", "1"]),
        ))
        .expect("submit after a quiet spell")
        .block;
    let delivered = runtime.block_on(async {
        loop {
            let response = tokio::time::timeout(Duration::from_secs(20), stream.message())
                .await
                .expect("the block arrives")
                .unwrap_or_else(|e| {
                    panic!("the quiet stream is still open: {e}\n{}", network.log(0))
                })
                .expect("not ended");
            if let Some(weft_protos::peer::deliver_response::Type::Block(block)) = response.r#type {
                break block.header.expect("header").number;
            }
        }
    });
    assert_eq!(delivered, committed);
    assert!(
        network.log(0).contains("handshake not finished"),
        "the closed connection is logged"
    );
}
