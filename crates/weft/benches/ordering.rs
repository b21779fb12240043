//! Ordering benchmark on a real 3-node Raft cluster (release `weft` processes
//! on 127.0.0.1, TLS on): envelopes of about 1 KB, BatchTimeout 100 ms.
//!
//! 1. Throughput: closed loop, 16 Broadcast streams each keeping 64
//!    envelopes in flight, spread over the three nodes; envelopes/s acked.
//! 2. Latency: open loop at a modest rate; broadcast-send → the block holding
//!    the envelope arrives on a Deliver stream; p50 / p99.
//!
//! Run with `cargo bench -p weft --bench ordering`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::Cluster;
use weft_channel::BatchSettings;
use weft_crypto::Signer;
use weft_node::seek::seek_envelope;
use weft_protos::Message;
use weft_protos::common::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};
use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use weft_protos::orderer::deliver_response::Type as DeliverType;
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_protos::orderer::{SeekNextCommit, SeekPosition, seek_position};

const CHANNEL: &str = "benchchannel";

/// A signed MESSAGE envelope of `size` bytes whose tx id is `id`.
fn envelope(signer: &weft_material::SigningIdentity, id: &str, size: usize) -> Envelope {
    let mut payload = Payload {
        header: Some(Header {
            channel_header: ChannelHeader {
                r#type: HeaderType::Message as i32,
                channel_id: CHANNEL.into(),
                tx_id: id.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            signature_header: SignatureHeader {
                creator: signer.serialized(),
                nonce: id.as_bytes().to_vec(),
            }
            .encode_to_vec(),
        }),
        data: Vec::new(),
    };
    let base = payload.encoded_len() + 80;
    payload.data = vec![b'x'; size.saturating_sub(base)];
    let payload = payload.encode_to_vec();
    let signature = signer.sign(&payload).expect("sign");
    Envelope { payload, signature }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = Cluster::start(
        3,
        "  heartbeat_ms: 100\n  election_timeout_min_ms: 600\n  election_timeout_max_ms: 1200\n",
    );
    cluster.join_all(
        CHANNEL,
        BatchSettings {
            max_message_count: 500,
            absolute_max_bytes: 10 << 20,
            preferred_max_bytes: 2 << 20,
            timeout: Duration::from_millis(100),
        },
    );
    cluster.wait_for_leader(CHANNEL, &[0, 1, 2]);
    let signer = Arc::new(cluster.network.user("org1.example.com", "User1", "Org1MSP"));
    let size = envelope(&signer, &format!("{:064}", 0), 1024).encoded_len();
    println!("envelope size: {size} bytes");

    // Throughput.
    let streams = 16;
    let per_stream = 1_500;
    let prepared: Vec<Vec<Envelope>> = (0..streams)
        .map(|s| {
            (0..per_stream)
                .map(|i| envelope(&signer, &format!("{s:032}{i:032}"), 1024))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let handles: Vec<_> = prepared
        .into_iter()
        .enumerate()
        .map(|(s, batch)| {
            let (tls, endpoint) = (cluster.tls(), cluster.endpoint(s % 3));
            cluster.spawn(async move {
                let mut client =
                    AtomicBroadcastClient::new(tls.channel(&endpoint).expect("channel"));
                let (tx, rx) = tokio::sync::mpsc::channel(64);
                let mut responses = client
                    .broadcast(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .expect("broadcast")
                    .into_inner();
                let total = batch.len();
                let sender = tokio::spawn(async move {
                    for envelope in batch {
                        if tx.send(envelope).await.is_err() {
                            break;
                        }
                    }
                });
                let mut outcomes: HashMap<String, usize> = HashMap::new();
                for _ in 0..total {
                    let outcome = match responses.message().await {
                        Ok(Some(r)) if r.status == 200 => "200".to_owned(),
                        Ok(Some(r)) => format!("{} {}", r.status, r.info),
                        Ok(None) => "stream ended".to_owned(),
                        Err(e) => format!("stream error: {}", e.message()),
                    };
                    *outcomes.entry(outcome).or_default() += 1;
                }
                let _ = sender.await;
                outcomes
            })
        })
        .collect();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for handle in handles {
        for (outcome, n) in cluster.block_on(handle).expect("stream") {
            *outcomes.entry(outcome).or_default() += n;
        }
    }
    let acked = outcomes.remove("200").unwrap_or_default();
    for (outcome, n) in &outcomes {
        println!("  not acknowledged: {n} x {outcome}");
    }
    let elapsed = started.elapsed();
    println!(
        "throughput: {acked} of {} envelopes acked in {:.2} s = {:.0} envelopes/s (3 nodes, 16 streams)",
        streams * per_stream,
        elapsed.as_secs_f64(),
        acked as f64 / elapsed.as_secs_f64()
    );

    // Latency, open loop at 500 envelopes/s for 10 s.
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let seek = seek_envelope(
        &signer,
        CHANNEL,
        SeekPosition {
            r#type: Some(seek_position::Type::NextCommit(SeekNextCommit {})),
        },
        weft_node::seek::specified(u64::MAX),
        SeekBehavior::BlockUntilReady,
    )
    .expect("seek");
    let watcher = {
        let (tls, endpoint) = (cluster.tls(), cluster.endpoint(1));
        let (sent_at, latencies) = (Arc::clone(&sent_at), Arc::clone(&latencies));
        cluster.spawn(async move {
            let mut client = AtomicBroadcastClient::new(tls.channel(&endpoint).expect("channel"))
                .max_decoding_message_size(64 << 20);
            let mut stream = client
                .deliver(tokio_stream::once(seek))
                .await
                .expect("deliver")
                .into_inner();
            while let Ok(Some(response)) = stream.message().await {
                if let Some(DeliverType::Block(block)) = response.r#type {
                    let now = Instant::now();
                    let sent_at = sent_at.lock().expect("sent");
                    let mut latencies = latencies.lock().expect("latencies");
                    for data in block.data.map(|d| d.data).unwrap_or_default() {
                        let Ok(envelope) = Envelope::decode(data.as_slice()) else {
                            continue;
                        };
                        let Ok(payload) = Payload::decode(envelope.payload.as_slice()) else {
                            continue;
                        };
                        let Some(header) = payload.header else {
                            continue;
                        };
                        let Ok(channel_header) =
                            ChannelHeader::decode(header.channel_header.as_slice())
                        else {
                            continue;
                        };
                        if let Some(sent) = sent_at.get(&channel_header.tx_id) {
                            latencies.push(now - *sent);
                        }
                    }
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let rate = 500u32;
    let duration = Duration::from_secs(10);
    let (tls, endpoint) = (cluster.tls(), cluster.endpoint(2));
    let (signer2, sent_at2) = (Arc::clone(&signer), Arc::clone(&sent_at));
    let sending = cluster.spawn(async move {
        let mut client = AtomicBroadcastClient::new(tls.channel(&endpoint).expect("channel"));
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let mut responses = client
            .broadcast(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("broadcast")
            .into_inner();
        let drain =
            tokio::spawn(async move { while let Ok(Some(_)) = responses.message().await {} });
        let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < duration {
            ticker.tick().await;
            i += 1;
            let id = format!("latency{i:057}");
            let envelope = envelope(&signer2, &id, 1024);
            sent_at2.lock().expect("sent").insert(id, Instant::now());
            if tx.send(envelope).await.is_err() {
                break;
            }
        }
        drop(tx);
        let _ = drain.await;
    });
    cluster.block_on(sending).expect("sender");
    std::thread::sleep(Duration::from_secs(1));
    watcher.abort();
    let mut latencies = latencies.lock().expect("latencies").clone();
    latencies.sort();
    let sent = sent_at.lock().expect("sent").len();
    if latencies.is_empty() {
        println!("latency: no envelope delivered");
        return;
    }
    println!(
        "latency at {rate} envelopes/s, BatchTimeout 100 ms: {} of {sent} delivered; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
}
