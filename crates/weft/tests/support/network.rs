//! A whole network of real processes for peer tests: `weft orderer` nodes
//! (a [`Cluster`]) and one `weft peer` per organisation (Org1MSP, Org2MSP),
//! joined to `mychannel`, each peer's gateway knowing the other org's peer.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_channel::BatchSettings;

use super::{Cluster, WEFT, free_port};

pub const CHANNEL: &str = "mychannel";
pub const ORGS: [(&str, &str); 2] = [
    ("org1.example.com", "Org1MSP"),
    ("org2.example.com", "Org2MSP"),
];

pub struct PeerProcess {
    pub domain: &'static str,
    pub msp_id: &'static str,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

pub struct Network {
    pub orderers: Cluster,
    pub peers: Vec<PeerProcess>,
    pub block: PathBuf,
}

impl Drop for Network {
    fn drop(&mut self) {
        for peer in &mut self.peers {
            if let Some(mut child) = peer.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Network {
    /// `orderers` Raft nodes and two peers; `chaincodes` is the YAML list
    /// under each peer's `chaincodes:` (the installed chaincodes; `{dir}`
    /// stands for the test directory), and each of `definitions` — (name,
    /// package id, endorsement policy) — is approved by both organisations
    /// and committed on the channel with `weft peer lifecycle chaincode`.
    pub fn start(orderers: usize, chaincodes: &str, definitions: &[(&str, &str, &str)]) -> Network {
        let cluster = Cluster::start(orderers, "");
        let batch = BatchSettings {
            max_message_count: 50,
            timeout: Duration::from_millis(100),
            ..Default::default()
        };
        cluster.join_all(CHANNEL, batch);
        let block = cluster.dir.path().join(format!("{CHANNEL}.block"));
        let root = cluster.network.root().to_path_buf();
        let dir = cluster.dir.path().to_path_buf();
        let ports: Vec<u16> = ORGS.iter().map(|_| free_port()).collect();
        let tlsca = |domain: &str| {
            root.join(format!(
                "peerOrganizations/{domain}/tlsca/tlsca.{domain}-cert.pem"
            ))
        };
        let orderer_ca =
            root.join("ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem");
        let mut peers = Vec::new();
        for (i, (domain, msp_id)) in ORGS.iter().enumerate() {
            let node = root.join(format!("peerOrganizations/{domain}/peers/peer0.{domain}"));
            let others: String = ORGS
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, (_, msp))| {
                    format!("  - msp_id: {msp}\n    address: 127.0.0.1:{}\n", ports[j])
                })
                .collect();
            let config = format!(
                "listen_address: 127.0.0.1:{port}\n\
                 data_dir: {data}\n\
                 msp_dir: {node}/msp\n\
                 msp_id: {msp_id}\n\
                 tls:\n  cert: {node}/tls/server.crt\n  key: {node}/tls/server.key\n  root_cas: [{ca1}, {ca2}, {orderer_ca}]\n\
                 limits:\n  execute_timeout: 5s\n  startup_timeout: 60s\n\
                 gateway_peers:\n{others}\
                 chaincodes:\n{chaincodes}",
                port = ports[i],
                data = dir.join(format!("peer{i}")).display(),
                node = node.display(),
                ca1 = tlsca(ORGS[0].0).display(),
                ca2 = tlsca(ORGS[1].0).display(),
                orderer_ca = orderer_ca.display(),
                chaincodes = chaincodes.replace("{dir}", &dir.display().to_string()),
            );
            let path = dir.join(format!("peer{i}.yaml"));
            std::fs::write(&path, config).expect("peer config");
            peers.push(PeerProcess {
                domain,
                msp_id,
                port: ports[i],
                config: path,
                log: dir.join(format!("peer{i}.log")),
                child: None,
            });
        }
        let mut network = Network {
            orderers: cluster,
            peers,
            block,
        };
        for i in 0..network.peers.len() {
            network.start_peer(i);
            network.join(i).expect("join");
        }
        for (name, package_id, policy) in definitions {
            for i in 0..network.peers.len() {
                let approve = network.lifecycle(
                    i,
                    &[
                        "approveformyorg",
                        "--package-id",
                        package_id,
                        "-n",
                        name,
                        "--signature-policy",
                        policy,
                    ],
                );
                approve.unwrap_or_else(|e| panic!("approve {name} for org {i}: {e}"));
            }
            network.settle();
            let commit =
                network.lifecycle(0, &["commit", "-n", name, "--signature-policy", policy]);
            commit.unwrap_or_else(|e| panic!("commit {name}: {e}"));
        }
        if !definitions.is_empty() {
            let height = network.height(0).expect("height");
            network.wait_for_height(1, height);
        }
        network
    }

    /// A gateway client of peer `i` as `user` (User1, Admin) of its org.
    pub fn gateway(&self, i: usize, user: &str) -> weft_client::Gateway {
        let domain = self.peers[i].domain;
        let msp = self.org_dir(i).join(format!("users/{user}@{domain}/msp"));
        let identity =
            weft_material::SigningIdentity::load(&msp, self.peers[i].msp_id).expect("identity");
        weft_client::Gateway::connect(&self.endpoint(i), &self.tls_ca(i), identity)
            .expect("gateway")
    }

    /// Peer `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.orderers.dir.path().join(format!("peer{i}"))
    }

    /// `weft peer <args>` as `user` of org `i` against its peer, with
    /// Fabric's `CORE_PEER_*` environment naming the peer and the identity.
    pub fn peer_command_as(&self, i: usize, user: &str, args: &[&str]) -> Result<String, String> {
        let domain = self.peers[i].domain;
        let msp = self.org_dir(i).join(format!("users/{user}@{domain}/msp"));
        let output = Command::new(WEFT)
            .arg("peer")
            .args(args)
            .env("CORE_PEER_ADDRESS", self.endpoint(i))
            .env("CORE_PEER_TLS_ROOTCERT_FILE", self.tls_ca(i))
            .env("CORE_PEER_MSPCONFIGPATH", msp)
            .env("CORE_PEER_LOCALMSPID", self.peers[i].msp_id)
            .output()
            .expect("run weft peer");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// `weft peer lifecycle chaincode <args>` as org `i`'s admin on its peer,
    /// on the channel, for version 1.0, sequence 1 unless `args` give a
    /// `--sequence` (Fabric's environment variables name the peer and the identity).
    pub fn lifecycle(&self, i: usize, args: &[&str]) -> Result<String, String> {
        self.lifecycle_as(i, "Admin", args)
    }

    /// [`Network::lifecycle`] as `user` of org `i`.
    pub fn lifecycle_as(&self, i: usize, user: &str, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["lifecycle", "chaincode"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-C", CHANNEL]);
        if matches!(
            args[0],
            "approveformyorg" | "commit" | "checkcommitreadiness"
        ) && !args.contains(&"--sequence")
        {
            full.extend_from_slice(&["-v", "1.0", "--sequence", "1"]);
        }
        self.peer_command_as(i, user, &full)
    }

    pub fn root(&self) -> PathBuf {
        self.orderers.network.root().to_path_buf()
    }

    pub fn start_peer(&mut self, i: usize) {
        let peer = &mut self.peers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&peer.log)
            .expect("log file");
        let child = Command::new(WEFT)
            .args(["peer", "start", "--config"])
            .arg(&peer.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn peer");
        peer.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", peer.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "peer {i} did not start: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub fn kill_peer(&mut self, i: usize) {
        if let Some(mut child) = self.peers[i].child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.peers[i].log).unwrap_or_default()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.peers[i].port)
    }

    pub fn org_dir(&self, i: usize) -> PathBuf {
        self.root()
            .join(format!("peerOrganizations/{}", self.peers[i].domain))
    }

    /// The CA certificate of peer `i`'s TLS certificate.
    pub fn tls_ca(&self, i: usize) -> PathBuf {
        let domain = self.peers[i].domain;
        self.org_dir(i)
            .join(format!("peers/peer0.{domain}/tls/ca.crt"))
    }

    /// (certificate, private key) of `user` (User1, Admin) of org `i`.
    pub fn user(&self, i: usize, user: &str) -> (PathBuf, PathBuf) {
        let domain = self.peers[i].domain;
        let msp = self.org_dir(i).join(format!("users/{user}@{domain}/msp"));
        (msp.join("signcerts/cert.pem"), msp.join("keystore/priv_sk"))
    }

    /// Flags naming peer `i` and its org admin's TLS files (Fabric's `peer channel` flags).
    pub fn admin_args(&self, i: usize) -> Vec<String> {
        let domain = self.peers[i].domain;
        let tls = self.org_dir(i).join(format!("users/Admin@{domain}/tls"));
        vec![
            "--peerAddresses".into(),
            self.endpoint(i),
            "--tlsRootCertFiles".into(),
            self.tls_ca(i).display().to_string(),
            "--client-cert".into(),
            tls.join("client.crt").display().to_string(),
            "--client-key".into(),
            tls.join("client.key").display().to_string(),
            // The MSP directory is found beside `tls/`.
            "--localMspId".into(),
            self.peers[i].msp_id.into(),
        ]
    }

    /// `weft peer channel join -b <genesis>` against peer `i`.
    pub fn join(&self, i: usize) -> Result<String, String> {
        let block = self.block.display().to_string();
        self.channel_admin(i, &["join", "-b", &block])
    }

    /// `weft peer channel <args>` against peer `i`, with its org admin's
    /// TLS client certificate.
    pub fn channel_admin(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let output = Command::new(WEFT)
            .args(["peer", "channel"])
            .args(args)
            .args(self.admin_args(i))
            .output()
            .expect("run weft peer channel");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Peer `i`'s height on the channel (from `weft peer channel list`).
    pub fn height(&self, i: usize) -> Option<u64> {
        let output = Command::new(WEFT)
            .args(["peer", "channel", "list"])
            .args(self.admin_args(i))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{CHANNEL} (height ")))
            .and_then(|rest| rest.trim_end_matches(')').parse().ok())
    }

    /// Waits until every peer has every block any of them has: a commit's
    /// endorsers each read every organisation's approval, so all must have
    /// the approvals' blocks.
    pub fn settle(&self) {
        let heights: Vec<u64> = (0..self.peers.len())
            .map(|i| self.height(i).expect("height"))
            .collect();
        let top = heights.into_iter().max().unwrap_or(0);
        for i in 0..self.peers.len() {
            self.wait_for_height(i, top);
        }
    }

    pub fn wait_for_height(&self, i: usize, height: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self.height(i);
            if seen.is_some_and(|h| h >= height) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "peer {i} stuck at {seen:?}, wanted {height}: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
