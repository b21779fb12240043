//! `weft events sink`: follows a channel of a network directory into
//! PostgreSQL (weft-sink), as a user of one of its organisations.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use weft_network::nodes::Role;

use crate::NetworkDirArg;

#[derive(clap::Subcommand)]
pub enum EventsCommand {
    /// Write a channel's blocks, transactions, writes, current state and
    /// chaincode events into PostgreSQL, each block exactly once: rows and
    /// the channel's checkpoint in one transaction, resumed after the
    /// checkpoint when restarted. Creates and migrates its tables.
    Sink(SinkArgs),
}

#[derive(clap::Args)]
pub struct SinkArgs {
    /// PostgreSQL to write to: `postgres://user:password@host:port/database`
    /// (or libpq's `host=… port=… user=… dbname=…`).
    #[arg(long, required_unless_present = "sink")]
    postgres: Option<String>,
    /// Run the spec's event sink of this name (`eventSinks:`), with its
    /// settings; what `weft up`'s supervisor runs.
    #[arg(long, conflicts_with_all = ["postgres", "postgres_ca", "channel", "org", "user", "chaincodes", "events", "no_writes", "operations"])]
    sink: Option<String>,
    /// Speak TLS to PostgreSQL, trusting this CA certificate (PEM) for the
    /// server's; add `sslmode=require` to the URL to refuse a server
    /// without TLS.
    #[arg(long = "postgres-ca")]
    postgres_ca: Option<PathBuf>,
    /// The channel; the spec's first by default.
    #[arg(short = 'C', long = "channel")]
    channel: Option<String>,
    /// The organisation (name or MSP ID) whose peer and user follow the
    /// channel; the spec's first by default. Private data comes for the
    /// collections it is a member of.
    #[arg(long)]
    org: Option<String>,
    /// The user (`User1`, `Admin`).
    #[arg(long, default_value = "User1")]
    user: String,
    /// The peer to follow (a node name of the organisation); its first peer
    /// by default.
    #[arg(long)]
    peer: Option<String>,
    /// Follow this peer (host:port) of any Fabric network instead of one
    /// of a weft network directory; with `--tlsRootCertFiles`,
    /// `--mspConfigPath` and `--localMspId` (or Fabric's `CORE_PEER_*`
    /// variables) and `-C`.
    #[arg(long = "peerAddresses", conflicts_with_all = ["peer", "org", "sink"], requires = "channel")]
    peer_address: Option<String>,
    /// The peer's TLS CA certificate; CORE_PEER_TLS_ROOTCERT_FILE by default.
    #[arg(long = "tlsRootCertFiles", requires = "peer_address")]
    tls_root_cert: Option<PathBuf>,
    /// The MSP directory of the identity that reads the channel;
    /// CORE_PEER_MSPCONFIGPATH by default.
    #[arg(long = "mspConfigPath", requires = "peer_address")]
    msp_config_path: Option<PathBuf>,
    /// Its MSP ID; CORE_PEER_LOCALMSPID by default.
    #[arg(long = "localMspId", requires = "peer_address")]
    local_msp_id: Option<String>,
    /// The first block, for a channel that has no checkpoint yet (a
    /// checkpoint always wins: nothing is written twice).
    #[arg(long = "from-block", default_value_t = 0)]
    from_block: u64,
    /// Stop once every block committed when the sink started is written,
    /// instead of following the channel.
    #[arg(long = "until-caught-up")]
    until_caught_up: bool,
    /// Only transactions (with their writes and events) of this chaincode;
    /// once per chaincode. All by default.
    #[arg(long = "chaincode")]
    chaincodes: Vec<String>,
    /// Only chaincode events of this name; once per name. All by default.
    #[arg(long = "event")]
    events: Vec<String>,
    /// Write no `writes` or `state` rows (transactions and events only).
    #[arg(long = "no-writes")]
    no_writes: bool,
    /// At most this many blocks per database transaction while catching up.
    #[arg(long = "batch-blocks", default_value_t = 500)]
    batch_blocks: usize,
    /// About this many rows at most per database transaction.
    #[arg(long = "batch-rows", default_value_t = 50_000)]
    batch_rows: usize,
    /// Serve `/metrics` and `/healthz` here (`127.0.0.1:9444`).
    #[arg(long)]
    operations: Option<String>,
    #[command(flatten)]
    dir: NetworkDirArg,
}

pub fn events(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Sink(args) => sink(args),
    }
}

/// Where the blocks come from: a peer, and who reads them.
struct Source {
    address: String,
    tls_ca: PathBuf,
    identity: weft_material::SigningIdentity,
    /// For progress lines: the peer and the reader.
    peer: String,
    reader: String,
}

fn sink(mut args: SinkArgs) -> anyhow::Result<()> {
    if args.batch_blocks == 0 || args.batch_rows == 0 {
        anyhow::bail!("--batch-blocks and --batch-rows must be at least 1");
    }
    let (source, channel) = match args.peer_address.take() {
        Some(address) => fabric_source(&mut args, address)?,
        None => network_source(&mut args)?,
    };
    run(args, source, channel)
}

/// A peer of any Fabric network, as Fabric's CLI names it.
fn fabric_source(args: &mut SinkArgs, address: String) -> anyhow::Result<(Source, String)> {
    use crate::lifecycle::flag_or_env;
    let tls_ca: PathBuf = flag_or_env(
        args.tls_root_cert.take(),
        "CORE_PEER_TLS_ROOTCERT_FILE",
        "tlsRootCertFiles",
    )?;
    let msp_dir: PathBuf = flag_or_env(
        args.msp_config_path.take(),
        "CORE_PEER_MSPCONFIGPATH",
        "mspConfigPath",
    )?;
    let msp_id: String = flag_or_env(
        args.local_msp_id.take(),
        "CORE_PEER_LOCALMSPID",
        "localMspId",
    )?;
    let identity = weft_material::SigningIdentity::load(&msp_dir, &msp_id)
        .map_err(|e| anyhow::anyhow!("loading the identity in {}: {e}", msp_dir.display()))?;
    let channel = args
        .channel
        .clone()
        .context("-C/--channel is needed with --peerAddresses")?;
    Ok((
        Source {
            peer: address.clone(),
            reader: format!("{msp_id} ({})", msp_dir.display()),
            address,
            tls_ca,
            identity,
        },
        channel,
    ))
}

/// A peer and user of a weft network directory (or the spec's event sink).
fn network_source(args: &mut SinkArgs) -> anyhow::Result<(Source, String)> {
    let dir = args.dir.open();
    let (spec, base) = dir.load_spec()?;
    if let Some(name) = &args.sink {
        let sink = spec
            .event_sinks
            .iter()
            .find(|s| &s.name == name)
            .with_context(|| {
                format!(
                    "no event sink {name:?} in network {:?} (eventSinks: {})",
                    spec.name,
                    spec.event_sinks
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        args.postgres = Some(sink.postgres.clone());
        args.postgres_ca = sink.postgres_ca.as_ref().map(|ca| base.join(ca));
        args.channel = Some(sink.channel_in(&spec).to_owned());
        args.org = sink.organization.clone();
        args.user = sink.user.clone().unwrap_or_else(|| "User1".into());
        args.chaincodes = sink.chaincodes.clone();
        args.events = sink.events.clone();
        args.no_writes = !sink.writes;
        args.operations = sink.operations_port.map(|port| format!("127.0.0.1:{port}"));
    }
    let org = match &args.org {
        Some(name) => spec
            .organization(name)
            .with_context(|| format!("no organisation {name:?} in network {:?}", spec.name))?,
        None => &spec.organizations[0],
    };
    let channel = args
        .channel
        .clone()
        .unwrap_or_else(|| spec.channels[0].name.clone());
    if !spec.channels.iter().any(|c| c.name == channel) {
        anyhow::bail!(
            "no channel {channel:?} in network {:?} (channels: {})",
            spec.name,
            spec.channels
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let peers: Vec<_> = dir
        .nodes(&spec)
        .into_iter()
        .filter(|n| matches!(n.role, Role::Peer { .. }) && n.msp_id == org.msp_id)
        .collect();
    let peer = match &args.peer {
        Some(name) => peers.iter().find(|p| &p.name == name).with_context(|| {
            format!(
                "no peer {name:?} in {} (peers: {})",
                org.msp_id,
                peers
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => peers
            .first()
            .with_context(|| format!("{} has no peer", org.msp_id))?,
    };
    let msp = weft_network::admin::user_msp(&dir, &org.domain, &args.user);
    let (_, _, tls_ca) = weft_network::admin::user_files(&dir, &org.domain, &args.user);
    let identity = weft_material::SigningIdentity::load(&msp, &org.msp_id)
        .map_err(|e| anyhow::anyhow!("{}@{}: {e}", args.user, org.domain))?;
    Ok((
        Source {
            address: peer.address(),
            tls_ca,
            identity,
            peer: format!("{} ({})", peer.name, peer.address()),
            reader: format!("{}@{}", args.user, org.domain),
        },
        channel,
    ))
}

fn run(args: SinkArgs, source: Source, channel: String) -> anyhow::Result<()> {
    let postgres = args
        .postgres
        .clone()
        .context("--postgres or --sink is needed")?;
    let runtime = crate::runtime()?;
    // The client's channel needs the runtime to exist.
    let deliverer = {
        let _entered = runtime.enter();
        weft_client::deliver::Deliverer::connect(&source.address, &source.tls_ca, source.identity)?
    };
    let postgres_tls = args
        .postgres_ca
        .as_deref()
        .map(weft_sink::tls::PostgresTls::from_ca_file)
        .transpose()?;
    let sink = weft_sink::Sink {
        postgres,
        postgres_tls,
        channel,
        deliverer,
        from_block: args.from_block,
        follow: !args.until_caught_up,
        filters: weft_sink::Filters {
            chaincodes: args.chaincodes.iter().cloned().collect::<BTreeSet<_>>(),
            events: args.events.iter().cloned().collect(),
            skip_writes: args.no_writes,
        },
        batch_blocks: args.batch_blocks,
        batch_rows: args.batch_rows,
    };
    let start = Instant::now();
    let mut progress =
        move |line: &str| eprintln!("[{:>7.1}s] {line}", start.elapsed().as_secs_f64());
    progress(&format!(
        "following {} on {} as {}",
        sink.channel, source.peer, source.reader
    ));
    runtime.block_on(async move {
        let metrics = match &args.operations {
            Some(address) => {
                let operations = weft_node::operations::Operations::new();
                let metrics = weft_sink::SinkMetrics::register(&operations);
                let config = weft_node::operations::OperationsConfig {
                    listen_address: address.clone(),
                    tls: None,
                };
                let bound = crate::bind_operations(Some(&config)).await?;
                crate::serve_operations(bound, operations);
                Some(metrics)
            }
            None => None,
        };
        let summary = tokio::select! {
            done = weft_sink::run(&sink, metrics.as_ref(), &mut progress) => done?,
            _ = stopped() => {
                // A transaction in flight is rolled back by PostgreSQL: the
                // checkpoint stays with the last block written.
                progress("stopped; the checkpoint is the last block written");
                return Ok(());
            }
        };
        let seconds = summary.elapsed.as_secs_f64().max(1e-3);
        progress(&format!(
            "caught up: {} block(s), {} transaction(s), {} row(s) in {seconds:.1}s ({:.0} blocks/s, {:.0} tx/s){}",
            summary.blocks,
            summary.transactions,
            summary.rows,
            summary.blocks as f64 / seconds,
            summary.transactions as f64 / seconds,
            summary
                .last_block
                .map(|b| format!("; checkpoint at block {b}"))
                .unwrap_or_default()
        ));
        Ok(())
    })
}

/// Resolves at SIGINT (Ctrl-C) or SIGTERM (`weft down`'s supervisor).
async fn stopped() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
