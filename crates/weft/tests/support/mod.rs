//! A cluster of real `weft orderer` processes on 127.0.0.1 for integration
//! tests: configs, start/kill/restart, channel join through `weft osnadmin`,
//! signed envelopes, Broadcast and Deliver clients, and TCP links between
//! nodes that a test can cut (to partition a node).

#![allow(dead_code)]

pub mod network;
pub mod up;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_channel::{BatchSettings, genesis_block};
use weft_node::seek::{seek_envelope, specified};
use weft_node::tls::{Tls, TlsFiles};
use weft_protos::Message;
use weft_protos::common::{Block, Envelope};
use weft_protos::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use weft_protos::orderer::deliver_response::Type as DeliverType;
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_testkit::{Submitter, TestNetwork};

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A port the OS reports free, never one this process handed out before:
/// the OS may offer a just-released port again, and two nodes of one spec
/// must not get the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Two organisations, one Raft orderer (quick to elect), `basic`, free ports.
pub fn one_orderer_spec(name: &str) -> String {
    one_orderer_spec_with(name, "250ms", "")
}

/// As [`one_orderer_spec`], cutting blocks after `batch_timeout`, with
/// `extra` (YAML) at the end.
pub fn one_orderer_spec_with(name: &str, batch_timeout: &str, extra: &str) -> String {
    format!(
        "name: {name}\n\
         organizations:\n\
         \x20 - {{name: Org1, mspId: Org1MSP, domain: org1.example.com, ports: [{}]}}\n\
         \x20 - {{name: Org2, mspId: Org2MSP, domain: org2.example.com, ports: [{}]}}\n\
         orderers:\n\
         \x20 organization: {{name: Orderer, mspId: OrdererMSP, domain: example.com}}\n\
         \x20 nodes: 1\n\
         \x20 ports: [{}]\n\
         \x20 batchTimeout: {batch_timeout}\n\
         chaincodes:\n\
         \x20 - name: basic\n\
         \x20   launcher: {{builtin: basic}}\n\
         {extra}",
        free_port(),
        free_port(),
        free_port()
    )
}

/// Whether process `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The value of the metric line `series` (name and labels exactly) in `text`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Every block of `channel` of the `weft up` network in `network_dir`,
/// read through peer0.org1 as User1 (`DeliverWithPrivateData`).
pub fn network_blocks(network_dir: &Path, channel: &str) -> Vec<Block> {
    let dir = weft_network::NetworkDir::new(network_dir);
    let (spec, _) = dir.load_spec().expect("spec");
    let peer = dir
        .nodes(&spec)
        .into_iter()
        .find(|n| n.name == "peer0.org1.example.com")
        .expect("peer");
    let msp = weft_network::admin::user_msp(&dir, "org1.example.com", "User1");
    let (_, _, ca) = weft_network::admin::user_files(&dir, "org1.example.com", "User1");
    let identity = weft_material::SigningIdentity::load(&msp, "Org1MSP").expect("identity");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let deliverer = weft_client::deliver::Deliverer::connect(&peer.address(), &ca, identity)
            .expect("deliver client");
        let mut stream = deliverer.blocks(channel, 0, false).await.expect("blocks");
        let mut blocks = Vec::new();
        while let Some(block) = stream.next().await.expect("block") {
            blocks.push(block.block);
        }
        blocks
    })
}

/// A TCP forwarder that can be cut (existing connections dropped, new ones
/// refused) and healed, or made to lose the answers of a while.
pub struct Link {
    pub port: u16,
    up: Arc<AtomicBool>,
    streams: Streams,
    /// While set, what the target sends back is dropped, not forwarded.
    swallowing: Arc<AtomicBool>,
    /// Bytes dropped so.
    pub swallowed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Link {
    pub fn new(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind link");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let streams: Streams = Arc::default();
        let swallowing = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (up2, streams2) = (Arc::clone(&up), Arc::clone(&streams));
        let answers = (Arc::clone(&swallowing), Arc::clone(&swallowed));
        std::thread::spawn(move || {
            for (number, inbound) in listener.incoming().enumerate() {
                let Ok(inbound) = inbound else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                // Kept (to cut them) while the connection lasts; whichever
                // direction ends first closes both and forgets them, so a
                // long test does not pile up descriptors.
                let (Ok(inbound2), Ok(outbound2)) = (inbound.try_clone(), outbound.try_clone())
                else {
                    continue;
                };
                streams2
                    .lock()
                    .expect("links")
                    .insert(number, [inbound2, outbound2]);
                let (Ok(inbound2), Ok(outbound2)) = (inbound.try_clone(), outbound.try_clone())
                else {
                    streams2.lock().expect("links").remove(&number);
                    continue;
                };
                pipe(inbound2, outbound2, None, (Arc::clone(&streams2), number));
                pipe(
                    outbound,
                    inbound,
                    Some(answers.clone()),
                    (Arc::clone(&streams2), number),
                );
            }
        });
        Link {
            port,
            up,
            streams,
            swallowing,
            swallowed,
        }
    }

    /// For `window`, requests still reach the target but its answers are
    /// dropped; then the connections open meanwhile are closed (clients
    /// connect again and are answered).
    pub fn swallow_answers(&self, window: Duration) {
        self.swallowing.store(true, Ordering::SeqCst);
        let (swallowing, streams) = (Arc::clone(&self.swallowing), Arc::clone(&self.streams));
        std::thread::spawn(move || {
            std::thread::sleep(window);
            close_all(&streams);
            swallowing.store(false, Ordering::SeqCst);
        });
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        close_all(&self.streams);
    }

    pub fn heal(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

type Swallow = (Arc<AtomicBool>, Arc<std::sync::atomic::AtomicUsize>);

/// A link's open connections by number: (inbound, outbound).
type Streams = Arc<Mutex<BTreeMap<usize, [TcpStream; 2]>>>;

fn close_all(streams: &Streams) {
    let open = std::mem::take(&mut *streams.lock().expect("links"));
    for stream in open.values().flatten() {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// Copies `from` to `to` on a thread; at the end closes `to` and forgets
/// connection `number` of the link.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    swallow: Option<Swallow>,
    (streams, number): (Streams, usize),
) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some((swallowing, swallowed)) = &swallow
                        && swallowing.load(Ordering::SeqCst)
                    {
                        swallowed.fetch_add(n, Ordering::SeqCst);
                        continue;
                    }
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        streams.lock().expect("links").remove(&number);
    });
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub network: TestNetwork,
    pub ports: Vec<u16>,
    children: Vec<Option<Child>>,
    /// links[i][j]: the path node i uses to reach node j.
    pub links: Vec<Vec<Option<Link>>>,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// `n` orderer processes; `raft` is extra YAML for the `raft:` section.
    pub fn start(n: usize, raft: &str) -> Self {
        Self::start_with(n, raft, "")
    }

    /// As [`Cluster::start`], with `extra` top-level YAML in each node's config.
    pub fn start_with(n: usize, raft: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let network = TestNetwork::in_dir(&dir.path().join("organizations"));
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let links = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| (i != j).then(|| Link::new(ports[j])))
                    .collect()
            })
            .collect::<Vec<Vec<Option<Link>>>>();
        for i in 0..n {
            let node = network.orderer_dir(i as u32);
            let overrides = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let port = links[i][j].as_ref().map(|l| l.port).unwrap_or(ports[j]);
                    format!("  \"127.0.0.1:{}\": \"127.0.0.1:{port}\"\n", ports[j])
                })
                .collect::<String>();
            let config = format!(
                "listen_address: 127.0.0.1:{port}\n\
                 data_dir: {data}\n\
                 msp_dir: {node}/msp\n\
                 msp_id: OrdererMSP\n\
                 tls:\n  cert: {node}/tls/server.crt\n  key: {node}/tls/server.key\n  root_cas: [{node}/tls/ca.crt, {orgs}/org1.example.com/tlsca/tlsca.org1.example.com-cert.pem, {orgs}/org2.example.com/tlsca/tlsca.org2.example.com-cert.pem]\n\
                 {extra}{raft}{overrides}",
                raft = if raft.is_empty() {
                    String::new()
                } else {
                    format!("raft:\n{raft}")
                },
                overrides = if overrides.is_empty() {
                    String::new()
                } else {
                    format!("endpoint_overrides:\n{overrides}")
                },
                port = ports[i],
                data = dir.path().join(format!("orderer{i}")).display(),
                node = node.display(),
                orgs = network.root().join("peerOrganizations").display(),
            );
            std::fs::write(dir.path().join(format!("orderer{i}.yaml")), config).expect("config");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut cluster = Cluster {
            dir,
            network,
            ports,
            children: (0..n).map(|_| None).collect(),
            links,
            runtime,
        };
        for i in 0..n {
            cluster.start_node(i);
        }
        cluster
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    pub fn start_node(&mut self, i: usize) {
        let log = std::fs::File::create(self.dir.path().join(format!("orderer{i}.log")))
            .expect("log file");
        let child = Command::new(WEFT)
            .args(["orderer", "start", "--config"])
            .arg(self.dir.path().join(format!("orderer{i}.yaml")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn orderer");
        self.children[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.ports[i])).is_err() {
            assert!(
                Instant::now() < deadline,
                "orderer {i} did not start: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("orderer{i}.log"))).unwrap_or_default()
    }

    /// Cuts every link to and from node `i`.
    pub fn isolate(&self, i: usize, cut: bool) {
        for (a, row) in self.links.iter().enumerate() {
            for (b, link) in row.iter().enumerate() {
                if let Some(link) = link
                    && (a == i || b == i)
                {
                    if cut { link.cut() } else { link.heal() }
                }
            }
        }
    }

    /// Writes the genesis block of `channel` with every node as a consenter.
    pub fn genesis(&self, channel: &str, batch: BatchSettings) -> PathBuf {
        let consenters: Vec<(&str, u32, u32)> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, &port)| ("127.0.0.1", u32::from(port), i as u32))
            .collect();
        let block = genesis_block(&self.network.channel_profile(channel, &consenters, batch))
            .expect("genesis block");
        let path = self.dir.path().join(format!("{channel}.block"));
        std::fs::write(&path, block.encode_to_vec()).expect("write block");
        path
    }

    fn admin_tls_args(&self) -> Vec<String> {
        let admin = self
            .network
            .orderer_org_dir()
            .join("users/Admin@example.com/tls");
        vec![
            "--ca-file".into(),
            admin.join("ca.crt").display().to_string(),
            "--client-cert".into(),
            admin.join("client.crt").display().to_string(),
            "--client-key".into(),
            admin.join("client.key").display().to_string(),
            // The MSP directory is found beside `tls/`.
            "--localMspId".into(),
            weft_testkit::ORDERER_ORG.1.into(),
        ]
    }

    /// Runs `weft osnadmin channel <args>` against node `i`.
    pub fn osnadmin(&self, i: usize, args: &[&str]) -> Result<serde_json::Value, String> {
        let output = Command::new(WEFT)
            .args(["osnadmin", "channel"])
            .args(args)
            .args(["-o", &self.endpoint(i)])
            .args(self.admin_tls_args())
            .output()
            .expect("run osnadmin");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
    }

    pub fn join_all(&self, channel: &str, batch: BatchSettings) {
        let block = self.genesis(channel, batch);
        for i in 0..self.ports.len() {
            let info = self
                .osnadmin(
                    i,
                    &[
                        "join",
                        "--channelID",
                        channel,
                        "--config-block",
                        block.to_str().expect("utf8"),
                    ],
                )
                .unwrap_or_else(|e| panic!("join node {i}: {e}"));
            assert_eq!(info["name"], channel);
        }
    }

    pub fn info(&self, i: usize, channel: &str) -> Option<serde_json::Value> {
        self.osnadmin(i, &["list", "--channelID", channel]).ok()
    }

    /// The leader as node `i` sees it (Raft ids are node index + 1).
    pub fn leader(&self, i: usize, channel: &str) -> Option<usize> {
        let id = self.info(i, channel)?["raft"]["leaderId"].as_u64()?;
        (id > 0).then(|| id as usize - 1)
    }

    pub fn wait_for_leader(&self, channel: &str, among: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen: Vec<Option<usize>> = among.iter().map(|&i| self.leader(i, channel)).collect();
            if let Some(Some(leader)) = seen.first()
                && seen.iter().all(|s| *s == Some(*leader))
                && among.contains(leader)
            {
                return *leader;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {among:?}: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn tls(&self) -> Tls {
        let admin = self
            .network
            .orderer_org_dir()
            .join("users/Admin@example.com/tls");
        Tls::load(&TlsFiles {
            cert: admin.join("client.crt"),
            key: admin.join("client.key"),
            root_cas: vec![admin.join("ca.crt")],
        })
        .expect("client tls")
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(future)
    }

    /// Broadcasts each envelope on its own stream to node `i`; returns the
    /// status for each (200 = acknowledged).
    pub fn broadcast(&self, i: usize, envelopes: Vec<Vec<u8>>) -> Vec<i32> {
        let endpoint = self.endpoint(i);
        let tls = self.tls();
        self.block_on(broadcast(tls, endpoint, envelopes))
    }

    /// Blocks `[0, to)` of `channel` from node `i`, as bytes.
    pub fn blocks(&self, i: usize, channel: &str, to: u64) -> Result<Vec<Vec<u8>>, String> {
        let endpoint = self.endpoint(i);
        let tls = self.tls();
        let user = self.network.user("org1.example.com", "User1", "Org1MSP");
        self.block_on(async move {
            let mut client = AtomicBroadcastClient::new(tls.channel(&endpoint)?)
                .max_decoding_message_size(256 << 20);
            let envelope = seek_envelope(
                &user,
                channel,
                specified(0),
                specified(to - 1),
                SeekBehavior::FailIfNotReady,
            )
            .map_err(|e| e.to_string())?;
            let mut stream = client
                .deliver(tokio_stream::once(envelope))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let mut blocks = Vec::new();
            while let Some(response) = stream.message().await.map_err(|e| e.to_string())? {
                match response.r#type {
                    Some(DeliverType::Block(block)) => blocks.push(block.encode_to_vec()),
                    Some(DeliverType::Status(200)) => return Ok(blocks),
                    Some(DeliverType::Status(status)) => {
                        return Err(format!("deliver status {status}"));
                    }
                    None => {}
                }
            }
            Err("deliver stream ended without a status".into())
        })
    }

    pub fn height(&self, i: usize, channel: &str) -> Option<u64> {
        self.info(i, channel)?["height"].as_u64()
    }

    /// Waits until nodes `among` all reach at least `height`.
    pub fn wait_for_height(&self, channel: &str, among: &[usize], height: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let heights: Vec<Option<u64>> =
                among.iter().map(|&i| self.height(i, channel)).collect();
            if heights.iter().all(|h| h.is_some_and(|h| h >= height)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "heights {heights:?} never reached {height}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One stream per call, envelopes sent in order; statuses in order.
pub async fn broadcast(tls: Tls, endpoint: String, envelopes: Vec<Vec<u8>>) -> Vec<i32> {
    let count = envelopes.len();
    let attempt = async {
        let mut client = AtomicBroadcastClient::new(tls.channel(&endpoint)?)
            .max_encoding_message_size(256 << 20);
        let requests: Vec<Envelope> = envelopes
            .iter()
            .map(|e| Envelope::decode(e.as_slice()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let mut stream = client
            .broadcast(tokio_stream::iter(requests))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let mut statuses = Vec::new();
        while let Ok(Some(response)) = stream.message().await {
            statuses.push(response.status);
        }
        Ok::<_, String>(statuses)
    };
    // Bounded: an answer that never comes counts as unknown, not a hang.
    let mut statuses = tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    // Answers that never came count as unknown (0).
    statuses.resize(count, 0);
    statuses
}

/// Envelopes of about `size` bytes, with tx ids unique to `seed`.
pub fn envelopes(
    submitter: &mut Submitter,
    seed: u64,
    count: usize,
    size: usize,
) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|_| {
            let mut builder = submitter.builder("basic", Vec::new());
            builder.nonce[16..24].copy_from_slice(&seed.to_be_bytes());
            builder.args = vec![b"invoke".to_vec(), vec![b'x'; size.saturating_sub(900)]];
            (builder.tx_id(), submitter.sign(&builder))
        })
        .collect()
}

/// The tx ids of a block's endorser transactions (not its config
/// transaction).
pub fn tx_ids(block: &[u8]) -> Vec<String> {
    let block = Block::decode(block).expect("block");
    block
        .data
        .map(|d| d.data)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| weft_protoutil::parse_envelope(e).ok())
        .filter(|t| !t.is_config())
        .map(|t| t.tx_id().to_owned())
        .collect()
}

/// Counts every tx id in the chain.
pub fn tx_counts(blocks: &[Vec<u8>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for block in blocks {
        for id in tx_ids(block) {
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

pub fn data_dir(cluster: &Cluster, i: usize) -> PathBuf {
    cluster.dir.path().join(format!("orderer{i}"))
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

/// Whether the tests run as root (engines and their networks need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `compat/node/gateway-app.mjs` (the official Node gateway client) as
/// User1 of Org1 of the network in `network` through `localhost:peer`
/// against `chaincode`, checks what it observed, and returns its report.
pub fn run_gateway_app(network: &Path, peer: u16, chaincode: &str) -> serde_json::Value {
    let packages = weft_compat::node_packages().expect("npm packages (compat/install.sh)");
    let org1 = network.join("organizations/peerOrganizations/org1.example.com");
    let user = org1.join("users/User1@org1.example.com/msp");
    let app = weft_compat::run(
        Command::new("node")
            .arg(packages.join("node/gateway-app.mjs"))
            .arg(format!("localhost:{peer}"))
            .arg(org1.join("tlsca/tlsca.org1.example.com-cert.pem"))
            .arg(user.join("signcerts/cert.pem"))
            .arg(user.join("keystore/priv_sk"))
            .arg("Org1MSP")
            .arg(chaincode)
            .current_dir(&packages),
    )
    .expect("node");
    let report = String::from_utf8_lossy(&app.stdout);
    assert!(
        app.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&app.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("report");
    assert!(report.get("unexpected").is_none(), "{report:#}");
    assert_eq!(report["read"]["Owner"], "Tomoko", "{report:#}");
    assert_eq!(report["transferStatus"]["successful"], true, "{report:#}");
    report
}

/// Unmounts everything mounted under `dir` (deepest first, lazily): what a
/// container engine of a test leaves mounted in its temporary directory
/// (its storage driver's own bind mounts, layers), which would otherwise
/// keep the directory from being removed.
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    points.dedup();
    for point in points {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(point)
            .stderr(Stdio::null())
            .status();
    }
}
