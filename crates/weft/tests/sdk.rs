//! `weft-sdk` against a real `weft up` network: an invoke is one line from a
//! YAML config; a hot key under concurrent writers ends with every logical
//! request committed exactly once (MVCC conflicts retried); a submit whose
//! answer is lost is recovered by its transaction id and not committed
//! twice; chaincode events resume from a checkpoint.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::up::UpNetwork;
use support::{Link, free_port, network_blocks};
use weft_protos::peer::TxValidationCode;

struct Network {
    net: UpNetwork,
    peer1: u16,
}

impl Network {
    fn up() -> Self {
        let peer1 = free_port();
        let spec = format!(
            "name: sdk\n\
             organizations:\n\
             \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{peer1}]}}\n\
             \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]}}\n\
             orderers:\n\
             \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n\
             \x20 nodes: 1\n\
             \x20 ports: [{}]\n\
             chaincodes:\n\
             \x20 - name: basic\n\
             \x20   launcher: {{builtin: basic}}\n",
            free_port(),
            free_port()
        );
        Network {
            net: UpNetwork::up(&spec, &[]),
            peer1,
        }
    }

    fn path(&self) -> PathBuf {
        self.net.path()
    }

    /// A client config for Org1 (User1) through `endpoint`, with `extra` settings.
    fn config(&self, endpoint: &str, extra: &str) -> PathBuf {
        let org1 = "net/organizations/peerOrganizations/org1.example.com";
        let text = format!(
            "x-basic: &basic\n\
             \x20 name: basic\n\
             \x20 version: \"1.0\"\n\
             \x20 functions:\n\
             \x20   CreateAsset: {{orgs: \"Org1MSP;Org2MSP\"}}\n\
             clients:\n\
             \x20 Org1:\n\
             \x20   mspId: Org1MSP\n\
             \x20   identity: {{msp: {org1}/users/User1@org1.example.com/msp}}\n\
             \x20   gateway: {{endpoint: \"{endpoint}\", tlsCaCert: {org1}/peers/peer0.org1.example.com/tls/ca.crt}}\n\
             \x20   channel: mychannel\n\
             \x20   chaincodes:\n\
             \x20     basic: *basic\n\
             {extra}"
        );
        let path = self
            .net
            .dir
            .path()
            .join(format!("client-{}.yaml", free_port()));
        std::fs::write(&path, text).expect("config");
        path
    }

    /// How many times `tx_id` was ordered (valid or not).
    fn occurrences(&self, tx_id: &str) -> usize {
        network_blocks(&self.path(), "mychannel")
            .iter()
            .flat_map(|block| weft_protoutil::block_envelopes(block).to_vec())
            .filter(|bytes| {
                weft_protoutil::parse_envelope(bytes).is_ok_and(|tx| tx.tx_id() == tx_id)
            })
            .count()
    }

    /// Valid transactions of `basic` that wrote `key`, with the JSON they wrote.
    fn writes_of(&self, key: &str) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        for block in network_blocks(&self.path(), "mychannel") {
            let filter = weft_protoutil::transactions_filter(&block)
                .unwrap_or_default()
                .to_vec();
            for (index, bytes) in weft_protoutil::block_envelopes(&block).iter().enumerate() {
                if filter.get(index).copied() != Some(TxValidationCode::Valid as u8) {
                    continue;
                }
                let Ok(tx) = weft_protoutil::parse_envelope(bytes) else {
                    continue;
                };
                let Some(action) = &tx.action else { continue };
                for namespace in action.rwsets.iter().filter(|n| n.namespace == "basic") {
                    for write in namespace.rwset.writes.iter().filter(|w| w.key == key) {
                        out.push((
                            tx.tx_id().to_owned(),
                            serde_json::from_slice(&write.value).unwrap_or_default(),
                        ));
                    }
                }
            }
        }
        out
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn one_line_calls_hot_keys_lost_answers_and_events() {
    let network = Network::up();
    let endpoint = format!("127.0.0.1:{}", network.peer1);
    let runtime = runtime();

    // One line per call, from the YAML config.
    let config = network.config(
        &endpoint,
        "    retry: {attempts: 40, backoff: 20ms, maxBackoff: 200ms}\n",
    );
    let client = runtime
        .block_on(async { weft_sdk::Client::from_config(&config, "Org1") })
        .expect("client");
    let created = runtime
        .block_on(client.invoke("CreateAsset", &["hot", "blue", "5", "Tom", "100"]))
        .expect("invoke");
    assert_eq!(created.attempts, 1);
    assert!(created.block > 0);
    let asset: serde_json::Value = serde_json::from_slice(
        &runtime
            .block_on(client.query("ReadAsset", &["hot"]))
            .expect("query"),
    )
    .expect("JSON");
    assert_eq!(asset["Owner"], "Tom");
    // submit_async: the transaction id now, the commit later.
    let pending = runtime
        .block_on(client.submit_async("CreateAsset", &["async", "red", "1", "Ann", "1"]))
        .expect("submit_async");
    let first = pending.tx_id.clone();
    let committed = runtime.block_on(pending.committed()).expect("commit");
    assert_eq!(committed.tx_id, first);

    // A hot key: every writer reads and writes `hot`. Each logical request
    // commits exactly once, however many conflicts it took.
    let writers = 10;
    let results: Vec<weft_sdk::Committed> = runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    let owner = format!("writer{i}");
                    client
                        .invoke("UpdateAsset", &["hot", "blue", "5", owner.as_str(), "100"])
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task").expect("every request commits"));
        }
        results
    });
    assert!(
        results.iter().any(|r| r.attempts > 1),
        "no read conflict happened, so nothing was retried: {results:?}"
    );
    let writes = network.writes_of("hot");
    for i in 0..writers {
        let owner = format!("writer{i}");
        let count = writes
            .iter()
            .filter(|(_, v)| v["Owner"] == owner.as_str())
            .count();
        assert_eq!(count, 1, "{owner} committed {count} times: {writes:?}");
    }
    let conflicts: u32 = results.iter().map(|r| r.attempts - 1).sum();
    eprintln!("hot key: {writers} requests, {conflicts} read conflicts retried");

    // A submit whose answer is lost: the gateway gets it, the orderer
    // orders it, the answer never arrives. The client asks for its status
    // and sends the same transaction again; it commits once.
    let link = Link::new(network.peer1);
    let lossy = network.config(
        &format!("127.0.0.1:{}", link.port),
        "    timeout: 1s\n    commitCheck: 1s\n",
    );
    let lossy = runtime
        .block_on(async { weft_sdk::Client::from_config(&lossy, "Org1") })
        .expect("client");
    let contract = lossy.contract("basic");
    let (endorsed, args) = runtime
        .block_on(contract.endorse_only("UpdateAsset", &["hot", "green", "9", "lost", "7"]))
        .expect("endorse");
    let tx_id = endorsed.tx_id.clone();
    link.swallow_answers(Duration::from_secs(3));
    let committed = runtime
        .block_on(contract.order(endorsed, args))
        .expect("recovered");
    assert_eq!(committed.tx_id, tx_id);
    assert!(
        link.swallowed.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no answer was lost"
    );
    let lost = network.writes_of("hot");
    let count = lost.iter().filter(|(_, v)| v["Owner"] == "lost").count();
    assert_eq!(count, 1, "{lost:?}");
    // The first copy was ordered, and so were the copies sent again while
    // the answers were lost (the status checks' answers were lost too; at
    // most three sends in all): duplicates of a committed transaction id,
    // they did not count.
    let ordered = network.occurrences(&tx_id);
    assert!((2..=3).contains(&ordered), "ordered {ordered} times");

    // Chaincode events, resumed from a checkpoint.
    let events = runtime.block_on(async {
        let mut stream = client
            .chaincode_events("basic", weft_sdk::Checkpoint::default())
            .await
            .expect("events");
        let mut events = Vec::new();
        while events.len() < 2 + writers + 1 {
            events.push(stream.next().await.expect("event"));
        }
        events
    });
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names[0], "CreateAsset", "{names:?}");
    let resumed = runtime.block_on(async {
        let mut stream = client
            .chaincode_events("basic", events[1].checkpoint())
            .await
            .expect("events");
        stream.next().await.expect("event")
    });
    assert_eq!(resumed, events[2], "resumes right after the checkpoint");
}
