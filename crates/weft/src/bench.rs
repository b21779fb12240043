//! `weft bench submit|evaluate|mixed`: arguments, the target (a network
//! directory's gateway peer, or any Fabric peer from a connection profile),
//! and the report's outputs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use weft_bench::{BenchConfig, Kind, Load, Mode, Stop, Target, Template, Workload};
use weft_client::Gateway;

use crate::{NetworkDirArg, runtime};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// How long to measure (a Go duration: `20s`, `2m`).
    #[arg(long, default_value = "20s", conflicts_with = "count")]
    duration: String,
    /// Measure this many requests instead of a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Requests before the measurement starts, not counted.
    #[arg(long, default_value = "2s")]
    warmup: String,
    /// Closed loop: requests kept in flight.
    #[arg(long, default_value_t = 64, conflicts_with = "rate")]
    concurrency: usize,
    /// Open loop: requests started per second, whatever the answers.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: requests due while this many are outstanding are dropped.
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// unique (CreateAsset of new keys), hot (UpdateAsset of --keys keys),
    /// transfer (TransferAsset of --keys keys).
    #[arg(long, default_value = "unique")]
    workload: String,
    /// Keys created before the run for `{key}` (hot, transfer, evaluations).
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// 0 spreads requests over the keys evenly; towards 1 they crowd onto a few.
    #[arg(long, default_value_t = 0.0)]
    skew: f64,
    /// Characters of `{payload}` (the asset colour in the built-in workloads).
    #[arg(long, default_value_t = 16)]
    payload_size: usize,
    /// Submit this function instead of the workload's (with --args).
    #[arg(long)]
    function: Option<String>,
    /// Argument templates of --function: `{unique}`, `{key}`, `{seq}`, `{worker}`, `{payload}`.
    #[arg(long, num_args = 0.., allow_hyphen_values = true, requires = "function")]
    args: Vec<String>,
    /// Evaluate this function instead of `ReadAsset {key}` (with --read-args).
    #[arg(long)]
    read_function: Option<String>,
    #[arg(long, num_args = 0.., allow_hyphen_values = true, requires = "read_function")]
    read_args: Vec<String>,
    /// Mixed: the share of requests that are evaluations.
    #[arg(long, default_value_t = 0.5)]
    read_ratio: f64,
    /// The chaincode.
    #[arg(long, default_value = "basic")]
    chaincode: String,
    /// The channel; by default the chaincode's only channel, or the first.
    #[arg(short = 'C', long = "channelID")]
    channel: Option<String>,
    /// The organisation whose gateway peer and user send the load.
    #[arg(long)]
    org: Option<String>,
    /// The user (`User1`).
    #[arg(long, default_value = "User1")]
    user: String,
    /// gRPC connections to the gateway peer.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// A Fabric common connection profile (JSON) to find the gateway peer
    /// in, instead of a weft network directory; needs --msp-dir and --mspid.
    #[arg(long, requires_all = ["msp_dir", "mspid"])]
    profile: Option<PathBuf>,
    /// The MSP directory of the identity (signcerts/, keystore/), with --profile.
    #[arg(long)]
    msp_dir: Option<PathBuf>,
    /// The identity's MSP ID, with --profile.
    #[arg(long)]
    mspid: Option<String>,
    /// Print one JSON object (with `tps`) instead of the text report.
    #[arg(long)]
    json: bool,
    /// Also write a report: `html` (charts of throughput and latency).
    #[arg(long, value_parser = ["html"])]
    report: Option<String>,
    /// Where --report writes.
    #[arg(long, default_value = "bench-report.html")]
    report_file: PathBuf,
    #[command(flatten)]
    dir: NetworkDirArg,
}

fn duration(text: &str, flag: &str) -> anyhow::Result<Duration> {
    weft_channel::parse_duration(text).map_err(|e| anyhow::anyhow!("--{flag} {text:?}: {e}"))
}

/// The first peer of `msp_id` (or of the profile's `client.organization`)
/// in a connection profile: its `host:port` and TLS CA certificate (PEM).
fn profile_peer(profile: &Path, msp_id: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(profile)
        .with_context(|| format!("reading {}", profile.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON connection profile", profile.display()))?;
    let organizations = json["organizations"]
        .as_object()
        .with_context(|| format!("{}: no organizations", profile.display()))?;
    let org = organizations
        .values()
        .find(|o| o["mspid"] == msp_id)
        .or_else(|| {
            json["client"]["organization"]
                .as_str()
                .and_then(|name| organizations.get(name))
        })
        .with_context(|| format!("{}: no organisation with mspid {msp_id}", profile.display()))?;
    let name = org["peers"][0].as_str().with_context(|| {
        format!(
            "{}: organisation {msp_id} lists no peers",
            profile.display()
        )
    })?;
    let peer = &json["peers"][name];
    let url = peer["url"]
        .as_str()
        .with_context(|| format!("{}: peer {name} has no url", profile.display()))?;
    let address = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_owned();
    let ca = match (
        peer["tlsCACerts"]["pem"].as_str(),
        peer["tlsCACerts"]["path"].as_str(),
    ) {
        (Some(pem), _) => pem.as_bytes().to_vec(),
        (None, Some(path)) => {
            let path = profile.parent().unwrap_or(Path::new(".")).join(path);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => anyhow::bail!("{}: peer {name} has no tlsCACerts", profile.display()),
    };
    Ok((address, ca))
}

pub fn bench(mode: Mode, args: BenchArgs) -> anyhow::Result<()> {
    let mode = match mode {
        Mode::Mixed { .. } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&args.read_ratio),
                "--read-ratio must be between 0 and 1"
            );
            Mode::Mixed {
                read_ratio: args.read_ratio,
            }
        }
        other => other,
    };
    let mut workload = Workload::new(Kind::parse(&args.workload).map_err(anyhow::Error::msg)?);
    workload.keys = args.keys.max(1);
    workload.skew = args.skew;
    workload.payload_size = args.payload_size;
    workload.submit = args.function.as_deref().map(|f| Template {
        function: f.to_owned(),
        args: args.args.clone(),
    });
    workload.evaluate = args.read_function.as_deref().map(|f| Template {
        function: f.to_owned(),
        args: args.read_args.clone(),
    });
    let load = match args.rate {
        Some(rate) => Load::Open {
            rate,
            max_in_flight: args.max_in_flight,
        },
        None => Load::Closed {
            concurrency: args.concurrency,
        },
    };
    let stop = match args.count {
        Some(count) => Stop::Count(count),
        None => Stop::After(duration(&args.duration, "duration")?),
    };
    let warmup = duration(&args.warmup, "warmup")?;
    let connections = args.connections.max(1);
    let runtime = runtime()?;
    let _entered = runtime.enter();
    let (target, channel) = match &args.profile {
        Some(profile) => {
            let msp_id = args.mspid.clone().unwrap_or_default();
            let msp_dir = args.msp_dir.clone().unwrap_or_default();
            let (address, ca) = profile_peer(profile, &msp_id)?;
            let mut gateways = Vec::new();
            for _ in 0..connections {
                let identity = weft_material::SigningIdentity::load(&msp_dir, &msp_id)
                    .with_context(|| format!("loading the identity in {}", msp_dir.display()))?;
                gateways.push(Gateway::connect_with_ca(&address, ca.clone(), identity)?);
            }
            let channel = args.channel.clone().unwrap_or_else(|| "mychannel".into());
            (
                Target {
                    gateways,
                    endpoint: address,
                    msp_id,
                    servers: Vec::new(),
                },
                channel,
            )
        }
        None => {
            let dir = args.dir.open();
            let (spec, _) = dir.load_spec()?;
            let (msp_id, channel) = crate::network::org_and_channel(
                &spec,
                args.org.as_deref(),
                &args.chaincode,
                args.channel.as_deref(),
            )?;
            let mut gateways = Vec::new();
            let mut endpoint = String::new();
            for _ in 0..connections {
                let (peer, gateway) =
                    weft_network::deploy::org_gateway(&dir, &spec, &msp_id, &args.user)?;
                endpoint = format!("{} ({})", peer.name, peer.address());
                gateways.push(gateway);
            }
            // The network's running nodes, whose CPU the report shows.
            let servers = weft_network::nodes::nodes(&spec)
                .into_iter()
                .filter_map(|node| {
                    weft_network::supervisor::running_node(&dir, &node).map(|pid| (node.name, pid))
                })
                .collect();
            (
                Target {
                    gateways,
                    endpoint,
                    msp_id,
                    servers,
                },
                channel,
            )
        }
    };
    let config = BenchConfig {
        mode,
        load,
        stop,
        warmup,
        channel,
        chaincode: args.chaincode.clone(),
        workload,
    };
    let quiet = args.json;
    let report = runtime.block_on(weft_bench::run(target, config, &mut |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    }))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if args.report.is_some() {
        std::fs::write(&args.report_file, report.to_html())
            .with_context(|| format!("writing {}", args.report_file.display()))?;
        eprintln!("report written to {}", args.report_file.display());
    }
    Ok(())
}
