//! The node administration commands: `weft peer channel join|joinbysnapshot|list`,
//! `weft peer chaincode dev-credentials` and `weft osnadmin channel
//! join|list|remove`. Each request is signed by an admin of the node's
//! organisation and sent over mutual TLS with the admin's TLS client
//! certificate (see `weft_node::admin`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use weft_node::{AdminConnection, Tls, TlsFiles};

use crate::lifecycle::flag_or_env;
use crate::runtime;

/// Who signs: the admin's MSP directory and MSP ID.
#[derive(clap::Args)]
pub struct AdminIdentity {
    /// The admin's MSP directory, which signs the request. By default the
    /// `msp/` beside a `--client-cert` flag's `tls/` directory (Fabric's
    /// `users/Admin@<domain>/` layout), else CORE_PEER_MSPCONFIGPATH, else the
    /// `msp/` beside CORE_PEER_TLS_CLIENTCERT_FILE's `tls/`.
    #[arg(long = "mspConfigPath", visible_alias = "msp-dir", global = true)]
    msp_config_path: Option<PathBuf>,
    /// The admin's MSP ID; CORE_PEER_LOCALMSPID by default.
    #[arg(long = "localMspId", visible_alias = "msp-id", global = true)]
    local_msp_id: Option<String>,
}

/// An admin connection to `endpoint`. `cert_flag`: the client certificate
/// was given as a flag, so its identity wins over the environment's (flags
/// win over variables: switching organisations with flags alone works).
pub fn connect(
    endpoint: &str,
    server_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    identity: AdminIdentity,
    cert_flag: bool,
) -> anyhow::Result<AdminConnection> {
    // Admin requests are signed by an admin of the node's organisation.
    let msp_dir = identity
        .msp_config_path
        .or_else(|| cert_flag.then(|| beside_tls(&client_cert)).flatten())
        .or_else(|| std::env::var_os("CORE_PEER_MSPCONFIGPATH").map(PathBuf::from))
        .or_else(|| beside_tls(&client_cert))
        .context("--mspConfigPath is required (or set CORE_PEER_MSPCONFIGPATH)")?;
    let msp_id = flag_or_env(identity.local_msp_id, "CORE_PEER_LOCALMSPID", "localMspId")?;
    let admin = weft_material::SigningIdentity::load(&msp_dir, &msp_id)
        .with_context(|| format!("loading the admin identity in {}", msp_dir.display()))?;
    let tls = Tls::load(&TlsFiles {
        cert: client_cert,
        key: client_key,
        root_cas: vec![server_ca],
    })
    .map_err(anyhow::Error::msg)?;
    AdminConnection::new(&tls, endpoint, Arc::new(admin)).map_err(anyhow::Error::msg)
}

/// `<user>/msp` for a client certificate at `<user>/tls/client.crt`.
fn beside_tls(client_cert: &Path) -> Option<PathBuf> {
    let msp = client_cert.parent()?.parent()?.join("msp");
    msp.join("signcerts").is_dir().then_some(msp)
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", e.code(), e.message())
}

/// A peer's admin endpoint and the admin's TLS files. Flags win over
/// Fabric's `CORE_PEER_*` variables.
#[derive(clap::Args)]
pub struct PeerAdminArgs {
    /// The peer's address (host:port); CORE_PEER_ADDRESS by default.
    #[arg(long = "peerAddresses", global = true)]
    peer_address: Option<String>,
    /// CA certificate that issued the peer's TLS certificate;
    /// CORE_PEER_TLS_ROOTCERT_FILE by default.
    #[arg(long = "tlsRootCertFiles", global = true)]
    tls_root_cert: Option<PathBuf>,
    /// The admin's TLS client certificate; CORE_PEER_TLS_CLIENTCERT_FILE by default.
    #[arg(long = "client-cert", global = true)]
    client_cert: Option<PathBuf>,
    /// The admin's TLS client key; CORE_PEER_TLS_CLIENTKEY_FILE by default.
    #[arg(long = "client-key", global = true)]
    client_key: Option<PathBuf>,
    #[command(flatten)]
    identity: AdminIdentity,
}

impl PeerAdminArgs {
    fn connect(self) -> anyhow::Result<(String, AdminConnection)> {
        let need = flag_or_env::<PathBuf>;
        let cert_flag = self.client_cert.is_some();
        let address = flag_or_env(self.peer_address, "CORE_PEER_ADDRESS", "peerAddresses")?;
        let connection = connect(
            &address,
            need(
                self.tls_root_cert,
                "CORE_PEER_TLS_ROOTCERT_FILE",
                "tlsRootCertFiles",
            )?,
            need(
                self.client_cert,
                "CORE_PEER_TLS_CLIENTCERT_FILE",
                "client-cert",
            )?,
            need(
                self.client_key,
                "CORE_PEER_TLS_CLIENTKEY_FILE",
                "client-key",
            )?,
            self.identity,
            cert_flag,
        )?;
        Ok((address, connection))
    }
}

#[derive(Subcommand)]
pub enum PeerChannelCommand {
    /// Join the peer to a channel from its genesis block.
    Join {
        /// The channel's genesis block.
        #[arg(short = 'b', long = "blockpath")]
        block: PathBuf,
    },
    /// Join the peer to a channel from a ledger snapshot (made by `weft peer
    /// snapshot submitrequest` on a peer of the channel): the ledger starts
    /// at the snapshot's block and the peer pulls the blocks after it. The
    /// snapshot must be under the peer's `<data_dir>/snapshots` or its
    /// configured `snapshot_import_dir`.
    Joinbysnapshot {
        /// The snapshot directory, as the peer sees its file system.
        #[arg(long = "snapshotpath")]
        snapshot: PathBuf,
    },
    /// List the peer's channels and their heights.
    List,
}

pub fn peer_channel(command: PeerChannelCommand, args: PeerAdminArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let (address, client) = {
        let _context = runtime.enter();
        args.connect()?
    };
    runtime.block_on(async move {
        match command {
            PeerChannelCommand::Join { block } => {
                let bytes = std::fs::read(&block)
                    .with_context(|| format!("reading {}", block.display()))?;
                let info = client.join(bytes).await.map_err(status)?;
                println!(
                    "peer {address} joined channel {} (height {})",
                    info.name, info.height
                );
            }
            PeerChannelCommand::Joinbysnapshot { snapshot } => {
                let path = std::path::absolute(&snapshot)
                    .with_context(|| snapshot.display().to_string())?;
                let info = client
                    .join_by_snapshot(path.to_string_lossy().into_owned())
                    .await
                    .map_err(status)?;
                println!(
                    "peer {address} joined channel {} from the snapshot (height {})",
                    info.name, info.height
                );
            }
            PeerChannelCommand::List => {
                let channels = client.list().await.map_err(status)?;
                println!("Channels peers has joined:");
                for channel in channels {
                    println!("{} (height {})", channel.name, channel.height);
                }
            }
        }
        Ok(())
    })
}

#[derive(Subcommand)]
pub enum PeerChaincodeCommand {
    /// Credentials for a chaincode you start yourself (an installed chaincode
    /// with `launcher: wait`): a TLS client certificate the peer issues for
    /// the package, which the chaincode must present to register. Writes
    /// them to DIR and prints the CORE_* variables the shims read. The
    /// certificate is good until the peer restarts.
    DevCredentials {
        /// The installed chaincode's package id.
        package_id: String,
        /// Where to write client.crt, client.key (PEM), their .b64 forms and peer-root.crt.
        #[arg(long)]
        output: PathBuf,
        #[command(flatten)]
        peer: PeerAdminArgs,
    },
    /// Submit a transaction through the peer's gateway and wait for its
    /// commit (Fabric's `peer chaincode invoke`).
    Invoke {
        #[command(flatten)]
        call: crate::lifecycle::CallArgs,
        #[command(flatten)]
        peer: crate::lifecycle::PeerArgs,
    },
    /// Evaluate a transaction on the peer; prints the chaincode's payload
    /// (Fabric's `peer chaincode query`).
    Query {
        #[command(flatten)]
        call: crate::lifecycle::CallArgs,
        #[command(flatten)]
        peer: crate::lifecycle::PeerArgs,
    },
}

pub fn peer_chaincode(command: PeerChaincodeCommand) -> anyhow::Result<()> {
    let (package_id, output, args) = match command {
        PeerChaincodeCommand::DevCredentials {
            package_id,
            output,
            peer,
        } => (package_id, output, peer),
        PeerChaincodeCommand::Invoke { call, peer } => {
            return crate::lifecycle::call(call, peer, true);
        }
        PeerChaincodeCommand::Query { call, peer } => {
            return crate::lifecycle::call(call, peer, false);
        }
    };
    let runtime = runtime()?;
    let (_, client) = {
        let _context = runtime.enter();
        args.connect()?
    };
    let issued = runtime
        .block_on(client.chaincode_credentials(&package_id))
        .map_err(status)?;
    let [cert_file, key_file, cert_path, key_path] =
        weft_peer::chaincode::launcher::write_credentials(
            &output,
            &issued.client_cert_pem,
            &issued.client_key_pem,
        )
        .map_err(anyhow::Error::msg)?;
    let root = output.join("peer-root.crt");
    std::fs::write(&root, &issued.peer_root_cert_pem)
        .with_context(|| format!("writing {}", root.display()))?;
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    println!(
        "# chaincode {package_id}: credentials in {}",
        output.display()
    );
    let files = [
        ("CORE_PEER_TLS_ROOTCERT_FILE", &root),
        ("CORE_TLS_CLIENT_CERT_PATH", &cert_path),
        ("CORE_TLS_CLIENT_KEY_PATH", &key_path),
        ("CORE_TLS_CLIENT_CERT_FILE", &cert_file),
        ("CORE_TLS_CLIENT_KEY_FILE", &key_file),
    ];
    println!("export CORE_CHAINCODE_ID_NAME={package_id}");
    println!("export CORE_PEER_ADDRESS={}", issued.peer_address);
    println!("export CORE_PEER_TLS_ENABLED=true");
    for (variable, path) in files {
        println!("export {variable}={}", absolute(path).display());
    }
    Ok(())
}

/// An orderer's admin endpoint and the admin's TLS files (`osnadmin`'s flags).
#[derive(clap::Args)]
pub struct OrdererAdminArgs {
    /// The orderer's admin endpoint (host:port).
    #[arg(short = 'o', long = "orderer", global = true)]
    orderer: Option<String>,
    /// CA certificate that issued the orderer's TLS certificate.
    #[arg(long = "ca-file", global = true)]
    ca_file: Option<PathBuf>,
    /// TLS client certificate (the admin's).
    #[arg(long = "client-cert", global = true)]
    client_cert: Option<PathBuf>,
    /// TLS client key.
    #[arg(long = "client-key", global = true)]
    client_key: Option<PathBuf>,
    #[command(flatten)]
    identity: AdminIdentity,
}

#[derive(Subcommand)]
pub enum ChannelAdmin {
    /// Join the orderer to a channel from its genesis block.
    Join {
        /// Name of the channel (checked against the block).
        #[arg(long = "channelID")]
        channel_id: String,
        /// The channel's genesis (config) block.
        #[arg(long = "config-block")]
        config_block: PathBuf,
    },
    /// List the orderer's channels.
    List {
        /// Show only this channel.
        #[arg(long = "channelID")]
        channel_id: Option<String>,
    },
    /// Remove the orderer from a channel, deleting its copy of the channel.
    Remove {
        #[arg(long = "channelID")]
        channel_id: String,
    },
}

fn channel_json(info: &weft_node::proto::ChannelInfo) -> serde_json::Value {
    serde_json::json!({
        "name": info.name,
        "height": info.height,
        "status": info.status,
        "consensusRelation": info.consensus_relation,
        "raft": {
            "nodeId": info.node_id,
            "leaderId": info.leader_id,
            "term": info.term,
            "logEntries": info.raft_log_entries,
            "firstIndex": info.raft_first_index,
            "lastIndex": info.raft_last_index,
            "snapshotIndex": info.raft_snapshot_index,
        },
    })
}

pub fn osnadmin_channel(command: ChannelAdmin, args: OrdererAdminArgs) -> anyhow::Result<()> {
    let need = |value: Option<PathBuf>, flag: &str| {
        value.with_context(|| format!("--{flag} is required (the admin service uses mutual TLS)"))
    };
    let orderer = args.orderer.context("-o/--orderer is required")?;
    let runtime = runtime()?;
    let client = {
        let _context = runtime.enter();
        connect(
            &orderer,
            need(args.ca_file, "ca-file")?,
            need(args.client_cert, "client-cert")?,
            need(args.client_key, "client-key")?,
            args.identity,
            true,
        )?
    };
    runtime.block_on(async move {
        let output = match command {
            ChannelAdmin::Join {
                channel_id,
                config_block,
            } => {
                let block = std::fs::read(&config_block)
                    .with_context(|| format!("reading {}", config_block.display()))?;
                let info = client.join(block).await.map_err(status)?;
                anyhow::ensure!(
                    info.name == channel_id,
                    "the block is for channel {}, not {channel_id}",
                    info.name
                );
                channel_json(&info)
            }
            ChannelAdmin::List {
                channel_id: Some(channel),
            } => channel_json(&client.info(&channel).await.map_err(status)?),
            ChannelAdmin::List { channel_id: None } => {
                let list = client.list().await.map_err(status)?;
                serde_json::json!({ "channels": list.iter().map(channel_json).collect::<Vec<_>>() })
            }
            ChannelAdmin::Remove { channel_id } => {
                client.remove(&channel_id).await.map_err(status)?;
                serde_json::json!({ "removed": channel_id })
            }
        };
        // A closed pipe (`| head`) is not an error worth a panic.
        use std::io::Write;
        match writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&output)?
        ) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    })
}
