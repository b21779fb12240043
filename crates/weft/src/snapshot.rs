//! `weft peer snapshot submitrequest|cancelrequest|listpending`: Fabric's
//! `peer snapshot` commands, with its flags and `CORE_PEER_*` variables.

use std::path::PathBuf;

use anyhow::Context;
use weft_client::snapshot::SnapshotAdmin;

use crate::lifecycle::flag_or_env;
use crate::runtime;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Ask the peer for a snapshot of a channel's ledger at a block: the
    /// last committed block (the default, or 0) is snapshotted at once, a
    /// later one when it commits. Snapshots are written to
    /// `<peer data>/snapshots/completed/<channel>/<block>/`.
    Submitrequest {
        #[command(flatten)]
        target: Target,
        /// The block number (0: the last committed block).
        #[arg(short = 'b', long = "blockNumber", default_value_t = 0)]
        block: u64,
    },
    /// Withdraw a pending snapshot request.
    Cancelrequest {
        #[command(flatten)]
        target: Target,
        #[arg(short = 'b', long = "blockNumber")]
        block: u64,
    },
    /// List the block numbers of a channel's pending snapshot requests.
    Listpending {
        #[command(flatten)]
        target: Target,
    },
}

/// Which peer and channel, as whom.
#[derive(clap::Args)]
pub struct Target {
    #[arg(short = 'c', long = "channelID")]
    channel: String,
    /// The peer (host:port); CORE_PEER_ADDRESS by default.
    #[arg(long = "peerAddress")]
    peer_address: Option<String>,
    /// CA certificate of the peer's TLS certificate; CORE_PEER_TLS_ROOTCERT_FILE by default.
    #[arg(long = "tlsRootCertFile")]
    tls_root_cert: Option<PathBuf>,
    /// An admin's MSP directory (of the peer's organisation);
    /// CORE_PEER_MSPCONFIGPATH by default.
    #[arg(long = "mspConfigPath")]
    msp_config_path: Option<PathBuf>,
    /// The admin's MSP ID; CORE_PEER_LOCALMSPID by default.
    #[arg(long = "localMspId")]
    local_msp_id: Option<String>,
}

impl Target {
    fn connect(self) -> anyhow::Result<(String, SnapshotAdmin)> {
        let address = flag_or_env(self.peer_address, "CORE_PEER_ADDRESS", "peerAddress")?;
        let tls_ca: PathBuf = flag_or_env(
            self.tls_root_cert,
            "CORE_PEER_TLS_ROOTCERT_FILE",
            "tlsRootCertFile",
        )?;
        let msp_dir: PathBuf = flag_or_env(
            self.msp_config_path,
            "CORE_PEER_MSPCONFIGPATH",
            "mspConfigPath",
        )?;
        let msp_id: String = flag_or_env(self.local_msp_id, "CORE_PEER_LOCALMSPID", "localMspId")?;
        let identity = weft_material::SigningIdentity::load(&msp_dir, &msp_id)
            .with_context(|| format!("loading the identity in {}", msp_dir.display()))?;
        Ok((
            self.channel,
            SnapshotAdmin::connect(&address, &tls_ca, identity)?,
        ))
    }
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let _context = runtime.enter();
    match command {
        Command::Submitrequest { target, block } => {
            let (channel, admin) = target.connect()?;
            runtime.block_on(admin.generate(&channel, block))?;
            println!("Snapshot request submitted successfully");
        }
        Command::Cancelrequest { target, block } => {
            let (channel, admin) = target.connect()?;
            runtime.block_on(admin.cancel(&channel, block))?;
            println!("Snapshot request cancelled successfully");
        }
        Command::Listpending { target } => {
            let (channel, admin) = target.connect()?;
            let pending = runtime.block_on(admin.pending(&channel))?;
            println!("Successfully got pending snapshot requests: {pending:?}");
        }
    }
    Ok(())
}
