//! Fabric's discovery service on weft's peers: the service itself (config,
//! peer membership, endorsers for policies, collections and
//! chaincode-to-chaincode calls, local peers, refusals), and the legacy npm
//! `fabric-network` 2.2 SDK with discovery enabled — which presents a
//! self-signed TLS client certificate — submitting, evaluating and listening
//! to contract events, against a default network and a three-organisation
//! network with two peers in one organisation.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use support::free_port;
use support::up::UpNetwork;
use weft_material::SigningIdentity;
use weft_protos::Message;
use weft_protos::discovery::discovery_client::DiscoveryClient;
use weft_protos::discovery::query::Query as QueryKind;
use weft_protos::discovery::query_result::Result as QueryResultKind;
use weft_protos::discovery::{
    AuthInfo, ChaincodeQuery, ConfigQuery, LocalPeerQuery, PeerMembershipQuery, Query, Request,
    SignedRequest,
};
use weft_protos::msp::SerializedIdentity;
use weft_protos::peer::{ChaincodeCall, ChaincodeInterest};

const COLLECTIONS: &str = r#"[{"name": "pair", "policy": "OR('Org1MSP.member','Org2MSP.member')", "requiredPeerCount": 0, "maxPeerCount": 1, "blockToLive": 0, "memberOnlyRead": true}]"#;

fn user(network: &UpNetwork, domain: &str, user: &str, msp_id: &str) -> SigningIdentity {
    SigningIdentity::load(
        &network
            .org(domain)
            .join(format!("users/{user}@{domain}/msp")),
        msp_id,
    )
    .expect("identity")
}

const SPEC: &str = "name: discovery\n\
organizations:\n\
\x20 - {name: Org1, mspId: Org1MSP, domain: org1.example.com, peers: 2, ports: [P1, P1B]}\n\
\x20 - {name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [P2]}\n\
\x20 - {name: Org3, mspId: Org3MSP, domain: org3.example.com, ports: [P3]}\n\
orderers:\n\
\x20 organization: {name: Orderer, mspId: OrdererMSP, domain: example.com}\n\
\x20 nodes: 1\n\
\x20 ports: [PO]\n\
chaincodes:\n\
\x20 - name: basic\n\
\x20   launcher: {builtin: basic}\n\
\x20 - name: either\n\
\x20   endorsementPolicy: \"OR('Org1MSP.peer', AND('Org2MSP.peer','Org3MSP.peer'))\"\n\
\x20   collectionsConfig: collections.json\n\
\x20   launcher: {builtin: basic}\n";

fn spec(ports: &BTreeMap<&str, u16>) -> String {
    let mut text = SPEC.to_owned();
    // Longest names first: P1B before P1.
    for name in ["P1B", "P1", "P2", "P3", "PO"] {
        text = text.replace(name, &ports[name].to_string());
    }
    text
}

fn signed(identity: &SigningIdentity, tls_hash: Vec<u8>, queries: Vec<Query>) -> SignedRequest {
    let payload = Request {
        authentication: Some(AuthInfo {
            client_identity: identity.serialized(),
            client_tls_cert_hash: tls_hash,
        }),
        queries,
    }
    .encode_to_vec();
    let signature = weft_crypto::Signer::sign(identity, &payload).expect("sign");
    SignedRequest { payload, signature }
}

fn query(channel: &str, kind: QueryKind) -> Query {
    Query {
        channel: channel.into(),
        query: Some(kind),
    }
}

fn interest(calls: &[(&str, &[&str])]) -> ChaincodeInterest {
    ChaincodeInterest {
        chaincodes: calls
            .iter()
            .map(|(name, collections)| ChaincodeCall {
                name: (*name).into(),
                collection_names: collections.iter().map(|c| (*c).to_owned()).collect(),
                ..ChaincodeCall::default()
            })
            .collect(),
    }
}

/// The MSP ids of an endorsement descriptor's layouts: one sorted list per
/// layout, an MSP id repeated as many times as the layout needs its peers.
fn layouts(descriptor: &weft_protos::discovery::EndorsementDescriptor) -> Vec<Vec<String>> {
    let msp_of = |group: &str| {
        let peers = &descriptor.endorsers_by_groups[group].peers;
        SerializedIdentity::decode(peers[0].identity.as_slice())
            .expect("identity")
            .mspid
    };
    let mut out: Vec<Vec<String>> = descriptor
        .layouts
        .iter()
        .map(|layout| {
            let mut msps: Vec<String> = layout
                .quantities_by_group
                .iter()
                .flat_map(|(group, n)| std::iter::repeat_n(msp_of(group), *n as usize))
                .collect();
            msps.sort();
            msps
        })
        .collect();
    out.sort();
    out
}

fn tls_channel(endpoint: &str, ca: &Path) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("https://{endpoint}"))
        .expect("endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(ca).expect("ca"),
                ))
                .domain_name("127.0.0.1"),
        )
        .expect("tls")
        .connect_lazy()
}

#[test]
fn the_discovery_service_answers_as_fabrics_and_fabric_network_uses_it() {
    let ports: BTreeMap<&str, u16> = ["P1", "P1B", "P2", "P3", "PO"]
        .into_iter()
        .map(|name| (name, free_port()))
        .collect();
    let network = UpNetwork::up(&spec(&ports), &[("collections.json", COLLECTIONS)]);
    let org1 = network.org("org1.example.com");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let user1 = user(&network, "org1.example.com", "User1", "Org1MSP");
    let admin1 = user(&network, "org1.example.com", "Admin", "Org1MSP");
    let endpoint = format!("127.0.0.1:{}", ports["P1"]);
    let channel = tls_channel(
        &endpoint,
        &org1.join("tlsca/tlsca.org1.example.com-cert.pem"),
    );
    let discover = |request: SignedRequest| {
        let channel = channel.clone();
        runtime.block_on(async move {
            DiscoveryClient::new(channel)
                .discover(request)
                .await
                .map(|r| r.into_inner().results)
        })
    };
    let results = discover(signed(
        &user1,
        Vec::new(),
        vec![
            query("mychannel", QueryKind::ConfigQuery(ConfigQuery {})),
            query(
                "mychannel",
                QueryKind::PeerQuery(PeerMembershipQuery { filter: None }),
            ),
            query(
                "mychannel",
                QueryKind::CcQuery(ChaincodeQuery {
                    interests: vec![
                        interest(&[("basic", &[])]),
                        interest(&[("either", &[])]),
                        interest(&[("either", &["pair"])]),
                        interest(&[("either", &[]), ("basic", &[])]),
                    ],
                }),
            ),
            query(
                "mychannel",
                QueryKind::CcQuery(ChaincodeQuery {
                    interests: vec![interest(&[("nothing", &[])])],
                }),
            ),
            query("nochannel", QueryKind::ConfigQuery(ConfigQuery {})),
            query("", QueryKind::LocalPeers(LocalPeerQuery {})),
        ],
    ))
    .expect("discover");
    assert_eq!(results.len(), 6);

    // Config: every organisation's MSP, with its TLS roots; the orderers.
    let Some(QueryResultKind::ConfigResult(config)) = &results[0].result else {
        panic!("config: {:?}", results[0]);
    };
    let msps: Vec<&str> = config.msps.keys().map(String::as_str).collect();
    assert_eq!(msps, ["OrdererMSP", "Org1MSP", "Org2MSP", "Org3MSP"]);
    assert!(
        config.msps["Org1MSP"]
            .tls_root_certs
            .iter()
            .any(|c| !c.is_empty())
    );
    assert_eq!(
        config.orderers["OrdererMSP"].endpoint[0].port,
        u32::from(ports["PO"])
    );

    // Membership: both peers of Org1, one of each other organisation.
    let Some(QueryResultKind::Members(members)) = &results[1].result else {
        panic!("members: {:?}", results[1]);
    };
    let counts: BTreeMap<&String, usize> = members
        .peers_by_org
        .iter()
        .map(|(org, peers)| (org, peers.peers.len()))
        .collect();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [2, 1, 1]);

    // Endorsers, by policy.
    let Some(QueryResultKind::CcQueryRes(endorsers)) = &results[2].result else {
        panic!("endorsers: {:?}", results[2]);
    };
    let [basic, either, pair, both] = endorsers.content.as_slice() else {
        panic!("{endorsers:?}");
    };
    let majority: Vec<Vec<String>> = vec![
        vec!["Org1MSP".into(), "Org2MSP".into()],
        vec!["Org1MSP".into(), "Org3MSP".into()],
        vec!["Org2MSP".into(), "Org3MSP".into()],
    ];
    assert_eq!(layouts(basic), majority, "basic: a majority of 3");
    assert_eq!(
        layouts(either),
        [
            vec!["Org1MSP".to_owned()],
            vec!["Org2MSP".to_owned(), "Org3MSP".to_owned()]
        ]
    );
    assert_eq!(
        layouts(pair),
        [vec!["Org1MSP".to_owned()]],
        "the collection's members are Org1 and Org2: Org3's peers cannot endorse"
    );
    let org1_group = basic
        .endorsers_by_groups
        .values()
        .find(|g| g.peers.len() == 2)
        .expect("Org1's group holds its two peers");
    assert_eq!(org1_group.peers.len(), 2);
    assert!(!layouts(both).is_empty(), "a chaincode-to-chaincode call");
    // An unknown chaincode is an error of that query alone.
    let Some(QueryResultKind::Error(unknown)) = &results[3].result else {
        panic!("{:?}", results[3]);
    };
    assert!(
        unknown.content.contains("nothing is not defined"),
        "{unknown:?}"
    );
    let Some(QueryResultKind::Error(unknown_channel)) = &results[4].result else {
        panic!("{:?}", results[4]);
    };
    assert!(
        unknown_channel.content.contains("nochannel"),
        "{unknown_channel:?}"
    );
    let Some(QueryResultKind::Error(not_admin)) = &results[5].result else {
        panic!("local peers for a user: {:?}", results[5]);
    };
    assert!(not_admin.content.contains("access denied"), "{not_admin:?}");

    // Local peers: for the organisation's admin.
    let local = discover(signed(
        &admin1,
        Vec::new(),
        vec![query("", QueryKind::LocalPeers(LocalPeerQuery {}))],
    ))
    .expect("discover");
    let Some(QueryResultKind::Members(local)) = &local[0].result else {
        panic!("{local:?}");
    };
    assert_eq!(local.peers_by_org["Org1MSP"].peers.len(), 2);

    // Refusals: a request not signed by its identity; a TLS hash that is not
    // the connection's; another organisation's user reading is fine, an
    // outsider is not.
    let mut forged = signed(
        &user1,
        Vec::new(),
        vec![query("mychannel", QueryKind::ConfigQuery(ConfigQuery {}))],
    );
    forged.signature[8] ^= 1;
    let refused = discover(forged).expect("answered");
    let Some(QueryResultKind::Error(error)) = &refused[0].result else {
        panic!("{refused:?}");
    };
    assert!(error.content.contains("access denied"), "{error:?}");
    let wrong_hash = discover(signed(
        &user1,
        vec![1; 32],
        vec![query("mychannel", QueryKind::ConfigQuery(ConfigQuery {}))],
    ))
    .expect_err("refused");
    assert_eq!(wrong_hash.code(), tonic::Code::PermissionDenied);

    // fabric-network 2.2, discovery on, through Org1's profile: it finds
    // every endorsing peer (both of Org1's), submits, evaluates, and hears
    // the contract's events.
    let endorsers = fabric_network(&org1);
    assert_eq!(
        endorsers.len(),
        4,
        "every peer of the channel: {endorsers:?}"
    );
    assert_eq!(
        endorsers
            .iter()
            .filter(|e| e.starts_with("Org1MSP@"))
            .count(),
        2,
        "{endorsers:?}"
    );
    drop(network);

    // And on a network of the default shape (two organisations, three Raft
    // orderers), on free ports.
    let default = UpNetwork::up(
        &format!(
            "name: default-shape\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{}]}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]}}\n\
         orderers:\n\
         \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n\
         \x20 nodes: 3\n\
         \x20 ports: [{}, {}, {}]\n\
         chaincodes:\n\
         \x20 - name: basic\n\
         \x20   launcher: {{builtin: basic}}\n",
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port()
        ),
        &[],
    );
    let endorsers = fabric_network(&default.org("org1.example.com"));
    assert_eq!(endorsers.len(), 2, "{endorsers:?}");
}

/// Runs `fabric-network-app.mjs` as Org1's User1 through the profile in
/// `org1`; checks what it saw and returns the endorsers it discovered.
fn fabric_network(org1: &Path) -> Vec<String> {
    let app = Command::new("node")
        .current_dir(weft_compat::compat_dir())
        .arg(weft_compat::compat_dir().join("node/fabric-network-app.mjs"))
        .arg(org1.join("connection-org1.json"))
        .arg(org1.join("users/User1@org1.example.com/msp/signcerts/cert.pem"))
        .arg(org1.join("users/User1@org1.example.com/msp/keystore/priv_sk"))
        .args(["Org1MSP", "mychannel", "basic", "fn-asset"])
        .output()
        .expect("node");
    assert!(
        app.status.success(),
        "fabric-network: {}",
        String::from_utf8_lossy(&app.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&app.stdout).expect("report");
    assert_eq!(report["read"]["Owner"], "Tomoko", "{report}");
    assert_eq!(report["readAfterTransfer"]["Owner"], "Brad", "{report}");
    let events: Vec<&str> = report["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        events.contains(&"CreateAsset") && events.contains(&"TransferAsset"),
        "{report}"
    );
    assert_eq!(
        report["missing"], "the asset fn-asset-missing does not exist",
        "{report}"
    );
    report["endorsers"]
        .as_array()
        .expect("endorsers")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .map(str::to_owned)
        .collect()
}
