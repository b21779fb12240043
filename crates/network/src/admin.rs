//! Talking to the nodes as their organisations' admins: channel joins (the
//! `osnadmin channel join` / `peer channel join` steps of Fabric's
//! test-network), heights, Raft leaders, and waiting for readiness.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_material::{SigningIdentity, layout};
use weft_node::AdminConnection;
use weft_node::proto::ChannelInfo;
use weft_node::tls::{Tls, TlsFiles};
use weft_spec::NetworkSpec;

use crate::NetworkError;
use crate::dir::NetworkDir;
use crate::nodes::{Node, Role};

/// The admin of the organisation that runs `node`: its TLS client material
/// and its signing identity.
fn org_admin(organizations: &Path, node: &Node) -> Result<(Tls, SigningIdentity), NetworkError> {
    let admin = layout::user_dir(&node.org_dir(organizations), "Admin", &node.domain);
    let tls = admin.join("tls");
    let tls = Tls::load(&TlsFiles {
        cert: tls.join("client.crt"),
        key: tls.join("client.key"),
        root_cas: vec![tls.join("ca.crt")],
    })
    .map_err(NetworkError::Material)?;
    let msp = admin.join("msp");
    let identity = SigningIdentity::load(&msp, &node.msp_id)
        .map_err(|e| NetworkError::Material(format!("{}: {e}", msp.display())))?;
    Ok((tls, identity))
}

/// An admin connection to one node.
pub struct NodeAdmin {
    pub node: Node,
    connection: AdminConnection,
}

impl NodeAdmin {
    pub fn new(dir: &NetworkDir, node: &Node) -> Result<Self, NetworkError> {
        let (tls, identity) = org_admin(&dir.organizations(), node)?;
        let connection = AdminConnection::new(&tls, &node.address(), Arc::new(identity))
            .map_err(NetworkError::Material)?
            .with_timeout(Duration::from_secs(15));
        Ok(NodeAdmin {
            node: node.clone(),
            connection,
        })
    }

    fn failed(&self, what: &str, status: tonic::Status) -> NetworkError {
        NetworkError::Node {
            node: self.node.name.clone(),
            message: format!("{what}: {}", status.message()),
        }
    }

    /// The node's channels.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>, NetworkError> {
        self.connection
            .list()
            .await
            .map_err(|s| self.failed("list channels", s))
    }

    pub async fn info(&self, channel: &str) -> Result<ChannelInfo, NetworkError> {
        self.connection
            .info(channel)
            .await
            .map_err(|s| self.failed(&format!("channel {channel}"), s))
    }

    pub async fn join(&self, block: &Path) -> Result<ChannelInfo, NetworkError> {
        let bytes = std::fs::read(block).map_err(|e| NetworkError::io(block, e))?;
        self.connection
            .join(bytes)
            .await
            .map_err(|s| self.failed(&format!("join {}", block.display()), s))
    }
}

/// Retries `attempt` until it succeeds or `deadline` passes (then the last error).
pub(crate) async fn retry<T, F, Fut>(deadline: Instant, mut attempt: F) -> Result<T, NetworkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NetworkError>>,
{
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The last lines of a node's log, for error messages.
pub fn log_tail(dir: &NetworkDir, node: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(dir.node_log(node)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until every node accepts connections, joins every orderer and peer
/// to its channels (skipping joins already done), and waits for each
/// channel's Raft leader. Idempotent.
pub async fn converge(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    converge_nodes(dir, spec, None, timeout, progress).await
}

/// [`converge`] for the nodes of one organisation (MSP ID): what its own
/// admin can do where every organisation deploys its own part.
pub async fn converge_organization(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    msp_id: &str,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    converge_nodes(dir, spec, Some(msp_id), timeout, progress).await
}

async fn converge_nodes(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    only: Option<&str>,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), NetworkError> {
    let deadline = Instant::now() + timeout;
    let all: Vec<Node> = dir
        .nodes(spec)
        .into_iter()
        .filter(|node| only.is_none_or(|msp_id| node.msp_id == msp_id))
        .collect();
    for node in &all {
        let waiting_since = Instant::now();
        let mut said = false;
        // Bounded: a dropped SYN (a firewall, a host not up yet) would
        // otherwise take the kernel's two minutes to fail.
        while !matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(node.address())
            )
            .await,
            Ok(Ok(_))
        ) {
            if Instant::now() > deadline {
                return Err(NetworkError::Node {
                    node: node.name.clone(),
                    message: format!(
                        "not listening on {} after {}s; last lines of {}:\n{}",
                        node.address(),
                        timeout.as_secs(),
                        dir.node_log(&node.name).display(),
                        log_tail(dir, &node.name, 15)
                    ),
                });
            }
            if !said && waiting_since.elapsed() > Duration::from_secs(5) {
                // Said once, so a node that never answers (a firewall
                // between containers, a host not started) is named long
                // before the deadline.
                progress(&format!(
                    "waiting for {} to accept connections at {}",
                    node.name,
                    node.address()
                ));
                said = true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    progress(&format!("{} node(s) listening", all.len()));
    // Orderers first (`nodes` lists them first): a peer's join needs nothing
    // from them, but its first pull does.
    let mut orderer_admins = Vec::new();
    for node in &all {
        let admin = NodeAdmin::new(dir, node)?;
        let joined = retry(deadline, || admin.channels()).await?;
        for channel in &spec.channels {
            let member = match node.role {
                Role::Orderer { .. } => true,
                Role::Peer { .. } => spec
                    .channel_organizations(channel)
                    .iter()
                    .any(|o| o.msp_id == node.msp_id),
            };
            if !member || joined.iter().any(|c| c.name == channel.name) {
                continue;
            }
            let block = dir.block(&channel.name);
            retry(deadline, || admin.join(&block)).await?;
            progress(&format!("{}: joined {}", node.name, channel.name));
        }
        if matches!(node.role, Role::Orderer { .. }) {
            orderer_admins.push(admin);
        }
    }
    // Every Raft node must know the leader: a follower that does not yet
    // cannot forward the first transactions it receives.
    for channel in &spec.channels {
        for admin in &orderer_admins {
            retry(deadline, || async {
                let info = admin.info(&channel.name).await?;
                if info.leader_id == 0 {
                    return Err(NetworkError::Node {
                        node: admin.node.name.clone(),
                        message: format!("channel {}: no Raft leader yet", channel.name),
                    });
                }
                Ok(())
            })
            .await?;
        }
        progress(&format!("channel {}: Raft leader elected", channel.name));
    }
    Ok(())
}

/// One node as `weft status` shows it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub node: Node,
    pub pid: Option<u32>,
    /// (channel, height) when the node answered.
    pub channels: Result<Vec<(String, u64)>, String>,
}

pub async fn status(dir: &NetworkDir, spec: &NetworkSpec) -> Vec<NodeStatus> {
    let mut out = Vec::new();
    for node in dir.nodes(spec) {
        let pid = crate::supervisor::running_node(dir, &node);
        let channels = match NodeAdmin::new(dir, &node) {
            Ok(admin) => admin
                .channels()
                .await
                .map(|list| list.into_iter().map(|c| (c.name, c.height)).collect())
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        out.push(NodeStatus {
            node,
            pid,
            channels,
        });
    }
    out
}

/// The MSP directory of `user` of the organisation with domain `domain`.
pub fn user_msp(dir: &NetworkDir, domain: &str, user: &str) -> PathBuf {
    let org_dir = layout::peer_org_dir(&dir.organizations(), domain);
    layout::user_dir(&org_dir, user, domain).join("msp")
}

/// The files an application of organisation `org` uses as `user`:
/// (certificate, private key, peer TLS CA certificate).
pub fn user_files(dir: &NetworkDir, domain: &str, user: &str) -> (PathBuf, PathBuf, PathBuf) {
    let org_dir = layout::peer_org_dir(&dir.organizations(), domain);
    let msp = user_msp(dir, domain, user);
    (
        msp.join(layout::SIGNCERT_FILE),
        msp.join(layout::KEY_FILE),
        layout::tls_ca_cert(&org_dir, domain),
    )
}
