//! Hostile clients against a running `weft up` network (`weft-fuzz
//! --network DIR`): for the budget, tasks send mutated and malformed
//! requests to every service of every node — Broadcast, Deliver, the
//! Cluster service, admin requests, proposals, gateway calls, chaincode
//! registrations, private-data pushes — holding TLS connections open with a
//! user's client certificate, while a normal client keeps submitting. At the
//! end: every node still runs with the pid it had, the normal client's
//! transactions committed, and a canary directory beside the network is
//! untouched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use weft_network::NetworkDir;
use weft_network::nodes::{Node, Role, nodes};
use weft_node::tls::{Tls, TlsFiles};
use weft_protos::common::Envelope;
use weft_protos::peer::{ChaincodeMessage, SignedProposal};

use crate::{Rng, mutate};

/// What a hostile run saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests sent (each answered, refused or cut by the node).
    pub requests: u64,
    /// Answered with an error status or refused at the transport.
    pub refused: u64,
    /// Transactions the normal client committed meanwhile.
    pub committed: u64,
    /// Its failures (none are expected).
    pub client_failures: Vec<String>,
    /// Nodes whose process changed or stopped.
    pub restarted: Vec<String>,
    /// Whether the canary beside the network was left alone.
    pub canary_intact: bool,
    /// Connections that stalled in their handshake (silence, or a few
    /// random bytes) and were closed by the node…
    pub stalled_closed: u64,
    /// …and those still open after [`STALL_BOUND`].
    pub stalled_kept: u64,
}

/// How long a node may keep a stalled connection before the run counts it
/// as kept (its `listener.handshake_timeout` is 10 s by default).
pub const STALL_BOUND: Duration = Duration::from_secs(30);

/// Stalled connections each node gets at once.
const STALLED_AT_ONCE: usize = 32;

fn tls_of(dir: &NetworkDir, node: &Node) -> Result<Tls, String> {
    // A plain user of the first peer organisation: the most an outsider
    // with stolen user credentials has.
    let organizations = dir.organizations();
    let org = organizations.join("peerOrganizations/org1.example.com");
    let user = org.join("users/User1@org1.example.com/tls");
    let server_ca = node.org_dir(&organizations).join("tlsca");
    let ca = std::fs::read_dir(&server_ca)
        .map_err(|e| format!("{}: {e}", server_ca.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "pem"))
        .ok_or_else(|| format!("no CA certificate in {}", server_ca.display()))?;
    Tls::load(&TlsFiles {
        cert: user.join("client.crt"),
        key: user.join("client.key"),
        root_cas: vec![ca],
    })
}

/// Writes a canary directory beside the network; returns its path.
fn plant_canary(dir: &Path) -> Result<PathBuf, String> {
    let canary = dir.with_file_name(format!(
        "{}-canary",
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(canary.join("nested"))
        .map_err(|e| format!("{}: {e}", canary.display()))?;
    std::fs::write(canary.join("nested/keep.txt"), b"canary")
        .map_err(|e| format!("{}: {e}", canary.display()))?;
    Ok(canary)
}

/// Attacks the network in `dir` for `duration` with `workers` hostile tasks.
pub async fn attack(
    dir: &Path,
    duration: Duration,
    workers: usize,
    seed: u64,
) -> Result<Outcome, String> {
    let network = NetworkDir::new(dir);
    let (spec, _) = network.load_spec().map_err(|e| e.to_string())?;
    let all = nodes(&spec);
    let pids: Vec<(String, Option<u32>)> = all
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                weft_network::supervisor::running_node(&network, n),
            )
        })
        .collect();
    if pids.iter().any(|(_, pid)| pid.is_none()) {
        return Err(format!("not every node is running: {pids:?}"));
    }
    let canary = plant_canary(dir)?;
    let seeds = Arc::new(crate::harnesses::network_seeds(&network, &spec)?);

    let requests = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let node = all[worker % all.len()].clone();
        let tls = tls_of(&network, &node)?;
        let seeds = Arc::clone(&seeds);
        let (requests, refused) = (Arc::clone(&requests), Arc::clone(&refused));
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::seeded(seed ^ (worker as u64 + 1).wrapping_mul(0x9e37_79b9));
            while Instant::now() < deadline {
                let ok = hit(&tls, &node, &seeds, &mut rng).await;
                requests.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Stalled handshakes against every node, in waves.
    let stalled_closed = Arc::new(AtomicU64::new(0));
    let stalled_kept = Arc::new(AtomicU64::new(0));
    for (i, node) in all.iter().enumerate() {
        let address = node.address();
        let (closed, kept) = (Arc::clone(&stalled_closed), Arc::clone(&stalled_kept));
        let mut rng = Rng::seeded(seed ^ 0x057a_11ed ^ i as u64);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let wave: Vec<_> = (0..STALLED_AT_ONCE)
                    .map(|_| {
                        let garbage: Vec<u8> =
                            (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
                        stall(address.clone(), garbage, deadline)
                    })
                    .collect();
                for outcome in futures_join(wave).await {
                    match outcome {
                        Some(true) => closed.fetch_add(1, Ordering::Relaxed),
                        Some(false) => kept.fetch_add(1, Ordering::Relaxed),
                        None => 0,
                    };
                }
            }
        }));
    }
    // The normal client, meanwhile.
    let (_, gateway) = weft_network::deploy::org_gateway(&network, &spec, "Org1", "User1")
        .map_err(|e| e.to_string())?;
    let mut committed = 0;
    let mut client_failures = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let args: Vec<Vec<u8>> = [
            "CreateAsset",
            &format!("soak-{seed}-{n}"),
            "red",
            "1",
            "Soak",
            "1",
        ]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
        match gateway.submit("mychannel", "basic", &args).await {
            Ok(_) => committed += 1,
            Err(e) => client_failures.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in tasks {
        let _ = task.await;
    }
    let restarted = all
        .iter()
        .zip(&pids)
        .filter(|(node, (_, before))| {
            weft_network::supervisor::running_node(&network, node) != *before
        })
        .map(|(node, _)| node.name.clone())
        .collect();
    let canary_intact = std::fs::read(canary.join("nested/keep.txt")).is_ok_and(|b| b == b"canary");
    let _ = std::fs::remove_dir_all(&canary);
    Ok(Outcome {
        requests: requests.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        committed,
        client_failures,
        restarted,
        canary_intact,
        stalled_closed: stalled_closed.load(Ordering::Relaxed),
        stalled_kept: stalled_kept.load(Ordering::Relaxed),
    })
}

/// Opens a connection to `address`, sends `garbage` (perhaps nothing) and
/// waits: `Some(true)` once the node closes it, `Some(false)` if it is
/// still open after [`STALL_BOUND`], `None` if the run ended first or the
/// connection failed.
async fn stall(address: String, garbage: Vec<u8>, run_ends: Instant) -> Option<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&address).await.ok()?;
    stream.write_all(&garbage).await.ok()?;
    let opened = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        let wait = (opened + STALL_BOUND).saturating_duration_since(Instant::now());
        let wait_run = run_ends.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait.min(wait_run), stream.read(&mut buf)).await {
            // Closed (an alert or nothing, then EOF), or reset.
            Ok(Ok(0) | Err(_)) => return Some(true),
            // A TLS alert or handshake bytes: keep waiting for the close.
            Ok(Ok(_)) => {}
            Err(_) if wait <= wait_run => return Some(false),
            Err(_) => return None,
        }
    }
}

/// Awaits every future of `wave`, concurrently.
async fn futures_join<T: Send + 'static>(
    wave: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = wave.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

/// Reads up to three answers of a stream (then the caller hangs up).
async fn read_some<T>(stream: &mut tonic::Streaming<T>) {
    for _ in 0..3 {
        if !matches!(stream.message().await, Ok(Some(_))) {
            break;
        }
    }
}

fn pick(seeds: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    if rng.below(4) != 0 {
        mutate(&mut input, seeds, rng);
    }
    input
}

/// One hostile request to `node`; whether the node answered it without an error.
async fn hit(
    tls: &Tls,
    node: &Node,
    seeds: &crate::harnesses::NetworkSeeds,
    rng: &mut Rng,
) -> bool {
    let Ok(channel) = tls.connect(&node.address()) else {
        return false;
    };
    let timeout = Duration::from_secs(5);
    let is_orderer = matches!(node.role, Role::Orderer { .. });
    let choice = rng.below(if is_orderer { 4 } else { 8 });
    let answered: Result<(), ()> = tokio::time::timeout(timeout, async {
        match (is_orderer, choice) {
            (_, 0) => {
                let request = weft_node::proto::SignedAdminRequest::decode(
                    pick(&seeds.admin, rng).as_slice(),
                )
                .unwrap_or_default();
                weft_node::proto::admin_client::AdminClient::new(channel)
                    .list(request)
                    .await
                    .map(drop)
                    .map_err(drop)
            }
            (true, 1) => {
                let envelopes: Vec<Envelope> = (0..1 + rng.below(4))
                    .map(|_| {
                        Envelope::decode(pick(&seeds.envelopes, rng).as_slice()).unwrap_or_default()
                    })
                    .collect();
                let mut client =
                    weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient::new(
                        channel,
                    );
                let mut stream = client
                    .broadcast(tokio_stream::iter(envelopes))
                    .await
                    .map_err(drop)?
                    .into_inner();
                while let Ok(Some(_)) = stream.message().await {}
                Ok(())
            }
            (true, 2) | (false, 1) => {
                let envelope =
                    Envelope::decode(pick(&seeds.seeks, rng).as_slice()).unwrap_or_default();
                // Read a few answers, then hang up.
                if is_orderer {
                    let mut stream =
                        weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient::new(
                            channel,
                        )
                        .deliver(tokio_stream::once(envelope))
                        .await
                        .map_err(drop)?
                        .into_inner();
                    read_some(&mut stream).await;
                } else {
                    let mut stream = weft_protos::peer::deliver_client::DeliverClient::new(channel)
                        .deliver(tokio_stream::once(envelope))
                        .await
                        .map_err(drop)?
                        .into_inner();
                    read_some(&mut stream).await;
                }
                Ok(())
            }
            (true, _) => {
                let request = weft_orderer::proto::RaftRequest {
                    channel: "mychannel".into(),
                    kind: rng.below(3) as i32,
                    payload: pick(&seeds.raft, rng),
                };
                weft_orderer::proto::cluster_client::ClusterClient::new(channel)
                    .raft(request)
                    .await
                    .map(drop)
                    .map_err(drop)
            }
            (false, 2) => {
                let proposal = SignedProposal::decode(pick(&seeds.proposals, rng).as_slice())
                    .unwrap_or_default();
                weft_protos::peer::endorser_client::EndorserClient::new(channel)
                    .process_proposal(proposal)
                    .await
                    .map(drop)
                    .map_err(drop)
            }
            (false, 3) => {
                let proposal = SignedProposal::decode(pick(&seeds.proposals, rng).as_slice())
                    .unwrap_or_default();
                weft_protos::gateway::gateway_client::GatewayClient::new(channel)
                    .evaluate(weft_protos::gateway::EvaluateRequest {
                        transaction_id: String::new(),
                        channel_id: "mychannel".into(),
                        proposed_transaction: Some(proposal),
                        target_organizations: Vec::new(),
                    })
                    .await
                    .map(drop)
                    .map_err(drop)
            }
            (false, 4) => {
                let envelope =
                    Envelope::decode(pick(&seeds.envelopes, rng).as_slice()).unwrap_or_default();
                weft_protos::gateway::gateway_client::GatewayClient::new(channel)
                    .submit(weft_protos::gateway::SubmitRequest {
                        transaction_id: String::new(),
                        channel_id: "mychannel".into(),
                        prepared_transaction: Some(envelope),
                    })
                    .await
                    .map(drop)
                    .map_err(drop)
            }
            (false, 5) => {
                let messages: Vec<ChaincodeMessage> = (0..1 + rng.below(3))
                    .map(|_| {
                        ChaincodeMessage::decode(pick(&seeds.chaincode, rng).as_slice())
                            .unwrap_or_default()
                    })
                    .collect();
                let mut stream =
                    weft_protos::peer::chaincode_support_client::ChaincodeSupportClient::new(
                        channel,
                    )
                    .register(tokio_stream::iter(messages))
                    .await
                    .map_err(drop)?
                    .into_inner();
                let _ = stream.message().await;
                Ok(())
            }
            (false, 6) => {
                let message =
                    weft_peer::proto::SignedMessage::decode(pick(&seeds.private, rng).as_slice())
                        .unwrap_or_default();
                weft_peer::proto::private_data_client::PrivateDataClient::new(channel)
                    .push(message)
                    .await
                    .map(drop)
                    .map_err(drop)
            }
            (false, _) => {
                let request = weft_protos::peer::SignedSnapshotRequest {
                    request: pick(&seeds.admin, rng),
                    signature: vec![0x30; 70],
                };
                weft_protos::peer::snapshot_client::SnapshotClient::new(channel)
                    .generate(request)
                    .await
                    .map(drop)
                    .map_err(drop)
            }
        }
    })
    .await
    .unwrap_or(Err(()));
    answered.is_ok()
}
