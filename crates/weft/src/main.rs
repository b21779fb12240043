//! The `weft` binary: one executable, one sub-command per role or tool.
//!
//! Invariant: argument parsing, file reading and printing only; every piece of
//! behaviour lives in a library crate.

mod admin;
mod bench;
mod builtin;
mod events;
mod lifecycle;
mod network;
mod rest;
mod snapshot;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weft_material::cryptogen::{self, CryptogenConfig};
use weft_spec::{LauncherSpec, NetworkSpec};

#[derive(Parser)]
#[command(name = "weft", version, about = "A Hyperledger Fabric-compatible blockchain platform", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring up a whole network from a spec (the default network without one):
    /// crypto material, genesis blocks, every node as a supervised local
    /// process, channel joins. Re-running resumes or restarts what is down.
    Up {
        /// Network spec file (YAML); the default is 2 orgs, 3 Raft orderers,
        /// channel mychannel and the built-in `basic` chaincode.
        spec: Option<PathBuf>,
        #[command(flatten)]
        dir: NetworkDirArg,
        /// Stay attached: supervise the nodes in this process until Ctrl-C.
        #[arg(long)]
        foreground: bool,
        /// Give up waiting for the network after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Run the nodes in containers on the local Docker engine instead:
        /// the spec's compose project (`weft deploy compose`) in --dir,
        /// started with docker-compose, weft's image built when missing.
        #[arg(long, conflicts_with = "foreground")]
        containers: bool,
    },
    /// Stop every node of a network (its data is kept).
    Down {
        #[command(flatten)]
        dir: NetworkDirArg,
        /// Also delete the network directory: material, ledgers, logs.
        #[arg(long)]
        purge: bool,
    },
    /// Every node of a network: process, reachability, height per channel.
    Status {
        #[command(flatten)]
        dir: NetworkDirArg,
    },
    /// Monitoring: a real Prometheus scraping every node and a real
    /// Alertmanager with weft's alert rules, beside the network.
    Monitor {
        #[command(subcommand)]
        command: MonitorCommand,
    },
    /// weft's container image, built into the local Docker engine
    /// (`DOCKER_HOST` or /var/run/docker.sock).
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// The network of a spec for container engines: a docker-compose
    /// project, and the one-shot step it runs once its nodes are up.
    Deploy {
        #[command(subcommand)]
        command: DeployCommand,
    },
    /// Check a node's health, as a container health check does: an
    /// `http://…/healthz` URL answers 200, or a `tcp://host:port` accepts
    /// connections. Exits 1 otherwise, saying why.
    Health {
        /// `http://127.0.0.1:17051/healthz` or `tcp://127.0.0.1:7051`.
        target: String,
    },
    /// Print a node's log (`weft logs peer0.org1.example.com`).
    Logs {
        /// The node (`orderer.example.com`, `peer0.org1.example.com`), an event sink of the spec, or `supervisor`.
        node: String,
        #[command(flatten)]
        dir: NetworkDirArg,
        /// How many lines from the end.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
        /// Keep printing as the log grows.
        #[arg(short, long)]
        follow: bool,
    },
    /// Data out of the chain: a channel's blocks into PostgreSQL.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Invoke or query a chaincode through an organisation's gateway peer.
    Chaincode {
        #[command(subcommand)]
        command: ChaincodeCommand,
    },
    /// Run the supervisor of a network directory (started by `weft up`).
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Generate crypto material (CAs, peers, orderers, admins, users) in
    /// Fabric's test-network layout, like Fabric's cryptogen. Re-running keeps
    /// what exists and adds what is missing.
    Cryptogen {
        /// Directory to write into: it becomes the `organizations/` directory.
        #[arg(long, default_value = "organizations")]
        output: PathBuf,
        /// Network spec file; without it, the default network (Org1MSP, Org2MSP, OrdererMSP).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Print nothing but errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a network spec and print what it describes.
    Validate {
        /// Network spec file.
        spec: PathBuf,
    },
    /// Channel tools.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
    /// Run an ordering service node.
    Orderer {
        #[command(subcommand)]
        command: OrdererCommand,
    },
    /// Channel participation on an orderer (the equivalent of Fabric's osnadmin).
    Osnadmin {
        #[command(subcommand)]
        command: OsnadminCommand,
    },
    /// Measure a gateway peer (weft's or Fabric's): throughput, latency per
    /// phase, errors, client CPU.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Run a peer, or manage its channels.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// A certificate authority that Fabric CA's clients (fabric-ca-client,
    /// the SDKs) use unchanged: enrol, register, revoke, CRLs.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// The REST gateway: JSON over HTTP for applications in any language,
    /// with API keys.
    Rest {
        #[command(subcommand)]
        command: rest::RestCommand,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a CA home: a root key and certificate (ca-cert.pem), a TLS
    /// certificate (tls-cert.pem) and ca.yaml with a bootstrap registrar.
    Init {
        /// The CA's directory.
        #[arg(long, short = 'H', default_value = ".")]
        home: PathBuf,
        /// The CA's name, which clients may address it by.
        #[arg(long = "ca.name", default_value = "ca")]
        name: String,
        /// The bootstrap identity, user:password.
        #[arg(long, short = 'b', default_value = "admin:adminpw")]
        boot: String,
        /// The port of the REST API.
        #[arg(long, short = 'p', default_value_t = 7054)]
        port: u16,
        /// The address the REST API listens on.
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
        /// Host names and addresses for the TLS certificate.
        #[arg(
            long = "csr.hosts",
            value_delimiter = ',',
            default_value = "localhost,127.0.0.1"
        )]
        hosts: Vec<String>,
        /// The CA certificate's common name (default: the CA's name).
        #[arg(long = "csr.cn")]
        common_name: Option<String>,
        /// Serve plain HTTP instead of HTTPS.
        #[arg(long)]
        no_tls: bool,
    },
    /// Run the CA.
    Start {
        /// The CA's directory (its ca.yaml).
        #[arg(long, short = 'H', default_value = ".", conflicts_with = "config")]
        home: PathBuf,
        /// A configuration file elsewhere.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Submit transactions (endorse, order, wait for the commit).
    Submit(Box<bench::BenchArgs>),
    /// Evaluate transactions (one peer, nothing ordered).
    Evaluate(Box<bench::BenchArgs>),
    /// Both, in the proportion --read-ratio.
    Mixed(Box<bench::BenchArgs>),
}

#[derive(clap::Args)]
struct NetworkDirArg {
    /// The network directory.
    #[arg(long = "dir", default_value = weft_network::DEFAULT_DIR)]
    path: PathBuf,
}

impl NetworkDirArg {
    /// The network directory; for a compose project (`weft up
    /// --containers`, `weft deploy compose`), the one inside it.
    fn open(&self) -> weft_network::NetworkDir {
        let inner = self.path.join("network");
        if self.is_compose_project() && inner.join("network.yaml").is_file() {
            return weft_network::NetworkDir::new(inner);
        }
        weft_network::NetworkDir::new(&self.path)
    }

    fn is_compose_project(&self) -> bool {
        self.path.join("docker-compose.yaml").is_file() && !self.path.join("network.yaml").is_file()
    }
}

#[derive(Subcommand)]
enum DeployCommand {
    /// Write a docker-compose project for the whole network on one host:
    /// a service per node (weft's image, configs and material read-only,
    /// a named volume for its ledgers, the spec's ports on 127.0.0.1,
    /// health checks, restarts) and an `init` service that joins channels
    /// and deploys chaincodes. Re-running keeps the identities.
    Compose {
        /// Network spec file; without it, the default network.
        spec: Option<PathBuf>,
        /// The project directory to write.
        #[arg(long)]
        output: PathBuf,
        /// weft's image (`weft image build` makes it).
        #[arg(long, default_value_t = format!("weft:{}", env!("CARGO_PKG_VERSION")))]
        image: String,
        /// One project per host of the spec's `hosts:` (in OUTPUT/<host>/),
        /// each with only its nodes, published on the host's address.
        #[arg(long)]
        per_host: bool,
    },
    /// Write Kubernetes objects for the network: per node a Deployment, a
    /// PersistentVolumeClaim for its ledger and a ClusterIP Service (its
    /// DNS name, in its TLS certificate); its material as ConfigMaps and
    /// Secrets; a Job that joins channels and deploys chaincodes; one
    /// Service exposing the gateway peer outside the cluster.
    /// Re-running keeps the identities.
    K8s {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The namespace of every object (a Namespace object is written too).
        #[arg(long)]
        namespace: Option<String>,
        /// Write OUTPUT/podman.yaml, the variant `podman kube play` runs
        /// (pods on one machine; keys in ConfigMaps: for testing only).
        #[arg(long)]
        podman: bool,
        /// A namespace per organisation (named after it: org1, orderer), in
        /// OUTPUT/kubernetes/<namespace>/, each with only its own keys, its
        /// own init Job and (peer organisations) its own gateway Service.
        #[arg(long)]
        per_organization: bool,
    },
    /// Write a Helm chart of the network: the objects of `weft deploy k8s`,
    /// templated on values for the image, storage, resources, the gateway's
    /// exposure and the peers per organisation (`helm upgrade` with more
    /// adds them, up to --peer-capacity).
    Helm {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Peers per organisation the chart holds identities for (default:
        /// the spec's).
        #[arg(long)]
        peer_capacity: Option<u32>,
    },
    /// Join every node to its channels and deploy the spec's chaincodes on a
    /// network whose nodes run in containers (the compose project's `init`
    /// service, the Kubernetes Job). Idempotent.
    Init {
        #[command(flatten)]
        dir: NetworkDirArg,
        /// Give up waiting for the nodes after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// How the nodes are dialled: at their names (compose) or their
        /// Services' names (Kubernetes).
        #[arg(long, value_enum, default_value_t = ReachArg::Containers)]
        reach: ReachArg,
        /// Only what this organisation's admin does (name or MSP ID): join
        /// its nodes, launch its chaincodes, approve for it, and commit once
        /// every member has approved.
        #[arg(long)]
        organization: Option<String>,
    },
}

/// What `weft deploy k8s` and `weft deploy helm` share (for a chart,
/// the values' defaults).
#[derive(clap::Args)]
struct ClusterArgs {
    /// Network spec file; without it, the default network.
    spec: Option<PathBuf>,
    /// The directory to write (OUTPUT/network/ keeps the material, CA keys
    /// and users, off the cluster).
    #[arg(long)]
    output: PathBuf,
    /// weft's image, as the cluster pulls it (`weft image build` makes it).
    #[arg(long, default_value_t = format!("weft:{}", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// How the gateway Service is reached from outside the cluster.
    #[arg(long, value_enum, default_value_t = ExposeArg::NodePort)]
    expose: ExposeArg,
    /// The organisation whose peer0 is the exposed gateway (default: the first).
    #[arg(long)]
    gateway_org: Option<String>,
    /// The ledgers' StorageClass (default: the cluster's).
    #[arg(long)]
    storage_class: Option<String>,
    /// Each ledger's volume size.
    #[arg(long, default_value = "5Gi")]
    storage: String,
}

impl ClusterArgs {
    /// The spec file and the options both deployments take.
    fn split(self) -> (Option<PathBuf>, weft_network::k8s::ClusterOptions) {
        let options = weft_network::k8s::ClusterOptions {
            output: self.output,
            image: self.image,
            exposure: self.expose.into(),
            gateway_org: self.gateway_org,
            storage_class: self.storage_class,
            storage: self.storage,
            launcher_rules: weft_kube::ROLE_RULES,
        };
        (self.spec, options)
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExposeArg {
    NodePort,
    LoadBalancer,
}

impl From<ExposeArg> for weft_network::k8s::Exposure {
    fn from(expose: ExposeArg) -> Self {
        match expose {
            ExposeArg::NodePort => weft_network::k8s::Exposure::NodePort,
            ExposeArg::LoadBalancer => weft_network::k8s::Exposure::LoadBalancer,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReachArg {
    /// At 127.0.0.1 (or the spec's hosts): a network of `weft up` or run by hand.
    Local,
    Containers,
    Kubernetes,
    KubernetesPerOrganization,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the image `FROM scratch`: this weft binary (or --binary), the
    /// libraries it loads, CA certificates, a non-root user; no registry needed.
    Build {
        /// The image's name and tag.
        #[arg(long, default_value_t = format!("weft:{}", env!("CARGO_PKG_VERSION")))]
        tag: String,
        /// The weft binary to put in the image (default: this one).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
}

fn image(command: ImageCommand) -> anyhow::Result<()> {
    let ImageCommand::Build { tag, binary } = command;
    let binary = match binary {
        Some(binary) => binary,
        None => std::env::current_exe().context("finding this weft binary")?,
    };
    let built = runtime()?.block_on(weft_containers::build_image(
        &binary,
        &tag,
        env!("CARGO_PKG_VERSION"),
        &mut |line| eprintln!("  {line}"),
    ))?;
    println!(
        "built {} ({}, {:.1} MB)",
        built.tag,
        built.id,
        built.size_bytes as f64 / 1e6
    );
    Ok(())
}

#[derive(Subcommand)]
pub(crate) enum MonitorCommand {
    /// Write the monitoring files (kept if you edited them) and start
    /// Prometheus, Alertmanager and the alert log receiver.
    Up {
        #[command(flatten)]
        dir: NetworkDirArg,
        #[arg(long, default_value_t = 9090)]
        prometheus_port: u16,
        #[arg(long, default_value_t = 9093)]
        alertmanager_port: u16,
        /// The receiver that appends every notification to monitoring/alerts.log.
        #[arg(long, default_value_t = 9095)]
        receiver_port: u16,
        /// Also post every notification to this webhook URL.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Stop them (their data and files are kept).
    Down {
        #[command(flatten)]
        dir: NetworkDirArg,
    },
    /// Scrape targets up or down, and the alerts Alertmanager holds.
    Status {
        #[command(flatten)]
        dir: NetworkDirArg,
    },
    /// The monitoring supervisor (started by `weft monitor up`).
    #[command(hide = true)]
    Supervise {
        #[command(flatten)]
        dir: NetworkDirArg,
    },
    /// The alert log receiver (started by `weft monitor up`).
    #[command(hide = true)]
    Receive {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        log: PathBuf,
    },
}

#[derive(Subcommand)]
enum ChaincodeCommand {
    /// Submit a transaction (endorse, order, wait for the commit) and print its result.
    Invoke(ChaincodeCall),
    /// Evaluate a transaction on one peer (nothing is ordered) and print its result.
    Query(ChaincodeCall),
    /// Deploy a chaincode on a network made by `weft up` (or change one):
    /// the peers of its channels' organisations install it, every member
    /// organisation approves the definition, then it is committed.
    Deploy(DeployArgs),
    /// Run a built-in chaincode as its own process, as Fabric's shims decide:
    /// classic mode, dialling the peer named by Fabric's CORE_* environment
    /// (what a peer's process launcher sets; set it yourself for dev mode),
    /// or chaincode-as-a-service when CHAINCODE_SERVER_ADDRESS and
    /// CHAINCODE_ID are set (TLS with CHAINCODE_TLS_CERT and CHAINCODE_TLS_KEY).
    Run {
        /// The built-in chaincode (`basic`).
        name: String,
        /// The peer's address (overrides CORE_PEER_ADDRESS).
        #[arg(long = "peer.address")]
        peer_address: Option<String>,
    },
    /// Serve a built-in chaincode as a service (the peer dials it), like
    /// `fabric-chaincode-node server`.
    Serve {
        /// The built-in chaincode (`basic`).
        name: String,
        /// Where to listen (host:port).
        #[arg(long = "chaincode-address")]
        address: std::net::SocketAddr,
        /// The id the peer knows the chaincode by (its package id).
        #[arg(long = "chaincode-id")]
        id: String,
        /// TLS certificate of the server (PEM); plain TCP without it.
        #[arg(long = "tls-cert", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key of the server (PEM).
        #[arg(long = "tls-key", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct DeployArgs {
    /// The chaincode name.
    name: String,
    /// Run a contract linked into weft (`basic`).
    #[arg(long, group = "launcher", value_name = "NAME")]
    builtin: Option<String>,
    /// Address of a chaincode-as-a-service the peers dial (host:port).
    #[arg(long, group = "launcher", value_name = "HOST:PORT")]
    address: Option<String>,
    /// TLS root CA (PEM) of the chaincode service at --address.
    #[arg(long = "tls-root-ca", requires = "address")]
    tls_root_ca: Option<PathBuf>,
    /// Working directory of the --command process.
    #[arg(long, requires = "command")]
    workdir: Option<PathBuf>,
    /// The definition's version.
    #[arg(short = 'v', long, default_value = "1.0")]
    version: String,
    /// A channel to deploy on, once per channel; every channel when omitted.
    #[arg(short = 'C', long = "channelID")]
    channels: Vec<String>,
    /// The endorsement policy (`AND('Org1MSP.peer','Org2MSP.peer')`); a
    /// majority of the channel's organisations when omitted.
    #[arg(long = "signature-policy")]
    signature_policy: Option<String>,
    /// A CouchDB-style index file (JSON), once per index.
    #[arg(long = "index")]
    indexes: Vec<PathBuf>,
    /// Private data collections, in Fabric's collections_config.json format.
    #[arg(long = "collections-config")]
    collections_config: Option<PathBuf>,
    #[command(flatten)]
    dir: NetworkDirArg,
    /// Give up waiting for the network after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// A command each peer starts (classic mode), after `--`;
    /// `{peer_address}` and `{chaincode_id}` in it are filled in.
    #[arg(last = true, group = "launcher", value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct ChaincodeCall {
    /// Chaincode name.
    chaincode: String,
    /// Function name (or give the call as `-c`).
    #[arg(required_unless_present = "ctor")]
    function: Option<String>,
    /// Arguments, as strings.
    args: Vec<String>,
    /// The call as Fabric's `peer chaincode invoke|query -c` takes it:
    /// `{"Args":["CreateAsset","a1","blue"]}`, or `{"function":"CreateAsset","Args":["a1","blue"]}`.
    #[arg(short = 'c', long = "ctor", conflicts_with_all = ["function", "args"])]
    ctor: Option<String>,
    /// Private inputs, as Fabric's `--transient`: a JSON object of base64
    /// values (`{"asset_properties":"eyJ…"}`), read with `GetTransient` and
    /// never written to the ledger.
    #[arg(long)]
    transient: Option<String>,
    /// The organisation (name or MSP ID) whose gateway peer and user to use;
    /// the first organisation of the spec by default.
    #[arg(long)]
    org: Option<String>,
    /// The user (`User1`, `Admin`).
    #[arg(long, default_value = "User1")]
    user: String,
    /// The channel; by default the chaincode's only channel, or the spec's first.
    #[arg(short = 'C', long = "channelID")]
    channel: Option<String>,
    #[command(flatten)]
    dir: NetworkDirArg,
}

#[derive(Subcommand)]
enum PeerCommand {
    /// Start the peer described by a config file; runs until SIGINT/SIGTERM.
    Start {
        /// The peer's config file (listen address, data dir, MSP, TLS, chaincodes).
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage the channels of one peer.
    /// Approve, commit and query chaincode definitions, as an organisation's
    /// admin, through a peer's gateway. Reads Fabric's CORE_PEER_ADDRESS,
    /// CORE_PEER_LOCALMSPID, CORE_PEER_MSPCONFIGPATH and
    /// CORE_PEER_TLS_ROOTCERT_FILE where a flag is not given.
    Lifecycle {
        #[command(subcommand)]
        command: Box<PeerLifecycleCommand>,
    },
    /// Ledger snapshots of a peer's channels (Fabric's `peer snapshot`),
    /// requested as an admin of the peer's organisation.
    Snapshot {
        #[command(subcommand)]
        command: snapshot::Command,
    },
    /// Manage the channels of one peer, as an admin of its organisation.
    Channel {
        #[command(subcommand)]
        command: admin::PeerChannelCommand,
        #[command(flatten)]
        peer: admin::PeerAdminArgs,
    },
    /// Invoke or query a chaincode with Fabric's `peer chaincode` flags and
    /// CORE_PEER_* variables; dev credentials for a chaincode you start
    /// yourself (as an admin of the peer's organisation).
    Chaincode {
        #[command(subcommand)]
        command: admin::PeerChaincodeCommand,
    },
}

#[derive(Subcommand)]
enum PeerLifecycleCommand {
    /// Chaincode definitions on a channel (Fabric's `peer lifecycle chaincode`).
    Chaincode {
        #[command(subcommand)]
        command: lifecycle::Command,
        #[command(flatten)]
        peer: lifecycle::PeerArgs,
    },
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// Create a channel on a network made by `weft up`: its genesis block,
    /// the orderers and the member organisations' peers joined, and the
    /// chaincodes meant for every channel deployed on it.
    Create {
        /// The channel name (lower case, digits, `.` and `-`).
        name: String,
        /// A member organisation (name or MSP ID), once per organisation;
        /// every organisation when omitted.
        #[arg(long = "org")]
        organizations: Vec<String>,
        #[command(flatten)]
        dir: NetworkDirArg,
        /// Give up waiting for the network after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Join peers of a network made by `weft up` to one of its channels,
    /// from its genesis block (they catch up from the orderers). Peers
    /// already joined are left alone.
    Join {
        /// The channel.
        name: String,
        /// A peer (`peer1.org1.example.com`), once per peer; every peer of
        /// the channel's organisations when omitted.
        #[arg(long = "peer")]
        peers: Vec<String>,
        #[command(flatten)]
        dir: NetworkDirArg,
    },
    /// Write a channel's genesis block for `weft osnadmin channel join`,
    /// as configtxgen does from a profile: the organisations, orderer
    /// organisation, Raft consenters and batch settings of a spec
    /// (`--spec`), or the default network's Org1MSP, Org2MSP and OrdererMSP.
    Genesis(GenesisArgs),
}

#[derive(clap::Args)]
struct GenesisArgs {
    #[arg(long = "channelID", default_value = "mychannel")]
    channel_id: String,
    /// The `organizations/` directory written by `weft cryptogen`.
    #[arg(long, default_value = "organizations")]
    organizations: PathBuf,
    /// The network spec whose organisations (the channel's members when
    /// the spec has the channel, else every one), orderer organisation,
    /// Raft nodes and batch settings the block carries, as configtxgen's
    /// profile would; without it, the default network's Org1MSP and Org2MSP.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// A consenter `host:port`, once per Raft node, in orderer order
    /// (orderer.example.com, orderer2.example.com, ...); with --spec, its
    /// orderers' ports on 127.0.0.1 by default.
    #[arg(long = "consenter", required_unless_present = "spec")]
    consenters: Vec<String>,
    /// BatchTimeout (Go duration); with --spec, the spec's.
    #[arg(long)]
    batch_timeout: Option<String>,
    /// BatchSize.MaxMessageCount; with --spec, the spec's.
    #[arg(long)]
    max_message_count: Option<u32>,
    /// Where to write the block.
    #[arg(long = "outputBlock")]
    output_block: PathBuf,
}

#[derive(Subcommand)]
enum OrdererCommand {
    /// Start the orderer described by a config file; runs until SIGINT/SIGTERM.
    Start {
        /// The orderer's config file (listen address, data dir, MSP, TLS).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum OsnadminCommand {
    /// Manage the channels of one orderer, as an admin of its organisation.
    Channel {
        #[command(subcommand)]
        command: admin::ChannelAdmin,
        #[command(flatten)]
        connection: admin::OrdererAdminArgs,
    },
}

fn load_spec(path: Option<&PathBuf>) -> anyhow::Result<NetworkSpec> {
    match path {
        None => Ok(NetworkSpec::default_network()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading network spec {}", path.display()))?;
            Ok(NetworkSpec::from_yaml(&text, &path.display().to_string())?)
        }
    }
}

fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    // Paths given on the command line are relative to where it runs; the
    // stored spec's are relative to its base, so they are stored absolute.
    let path = |p: &std::path::Path| weft_network::dir::absolute(p).display().to_string();
    let launcher = match (args.builtin, args.address) {
        (Some(name), None) if args.command.is_empty() => LauncherSpec::Builtin(name),
        (None, Some(address)) if args.command.is_empty() => LauncherSpec::External {
            address,
            tls_root_ca: args.tls_root_ca.as_deref().map(path),
        },
        (None, None) if !args.command.is_empty() => LauncherSpec::Process {
            command: args.command,
            dir: args.workdir.as_deref().map(path),
            env: Default::default(),
        },
        _ => anyhow::bail!(
            "say how the chaincode runs: --builtin <name>, --address <host:port>, or -- <command...>"
        ),
    };
    let chaincode = weft_spec::ChaincodeSpec {
        name: args.name,
        version: args.version,
        channels: (!args.channels.is_empty()).then_some(args.channels),
        endorsement_policy: args.signature_policy,
        indexes: args.indexes.iter().map(|p| path(p)).collect(),
        collections_config: args.collections_config.as_deref().map(path),
        launcher,
    };
    // Files given on the command line are read before the network is
    // touched, and named by their flag.
    if let Some(file) = &chaincode.collections_config {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("--collections-config {file}: {e}"))?;
        weft_client::lifecycle::collections_config(&text, file)?;
    }
    if let LauncherSpec::External {
        tls_root_ca: Some(file),
        ..
    } = &chaincode.launcher
    {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("--tls-root-ca {file}: {e}"))?;
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            anyhow::bail!("--tls-root-ca {file}: expected a PEM certificate");
        }
    }
    for file in &chaincode.indexes {
        let text =
            std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("--index {file}: {e}"))?;
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
            anyhow::anyhow!("--index {file}: expected a JSON index definition: {e}")
        })?;
    }
    network::chaincode_deploy(args.dir.open(), chaincode, args.timeout)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Cryptogen {
            output,
            spec,
            quiet,
        } => {
            let spec = load_spec(spec.as_ref())?;
            let report =
                cryptogen::generate(&spec, &output, &CryptogenConfig::default(), &mut |line| {
                    if !quiet {
                        println!("{line}");
                    }
                })
                .with_context(|| format!("generating crypto material in {}", output.display()))?;
            if !quiet {
                println!(
                    "crypto material in {}: {} identities written, {} kept; {} CAs written, {} kept",
                    output.display(),
                    report.identities_written,
                    report.identities_kept,
                    report.cas_written,
                    report.cas_kept
                );
            }
            Ok(())
        }
        Command::Channel { command } => channel(command),
        Command::Orderer { command } => orderer(command),
        Command::Osnadmin { command } => osnadmin(command),
        Command::Peer { command } => peer(command),
        Command::Ca { command } => ca(command),
        Command::Rest { command } => rest::rest(command),
        Command::Bench { command } => match command {
            BenchCommand::Submit(args) => bench::bench(weft_bench::Mode::Submit, *args),
            BenchCommand::Evaluate(args) => bench::bench(weft_bench::Mode::Evaluate, *args),
            BenchCommand::Mixed(args) => {
                bench::bench(weft_bench::Mode::Mixed { read_ratio: 0.5 }, *args)
            }
        },
        Command::Up {
            spec,
            dir,
            timeout,
            containers: true,
            ..
        } => network::up_containers(&dir.path, spec.as_deref(), timeout),
        Command::Up {
            spec,
            dir,
            foreground,
            timeout,
            containers: false,
        } => network::up(dir.open(), spec.as_deref(), foreground, timeout),
        Command::Down { dir, purge } if dir.is_compose_project() => {
            network::down_containers(&dir.path, purge)
        }
        Command::Down { dir, purge } => network::down(dir.open(), purge),
        Command::Status { dir } => network::status(dir.open()),
        Command::Monitor { command } => network::monitor(command),
        Command::Image { command } => image(command),
        Command::Deploy { command } => match command {
            DeployCommand::Compose {
                spec,
                output,
                image,
                per_host,
            } => network::deploy_compose(
                spec.as_deref(),
                weft_network::compose::ComposeOptions {
                    output,
                    image,
                    per_host,
                    chaincodes: Default::default(),
                },
            ),
            DeployCommand::K8s {
                cluster,
                namespace,
                podman,
                per_organization,
            } => {
                let (spec, cluster) = cluster.split();
                network::deploy_k8s(
                    spec.as_deref(),
                    weft_network::k8s::KubernetesOptions {
                        cluster,
                        namespace,
                        podman,
                        per_organization,
                    },
                )
            }
            DeployCommand::Helm {
                cluster,
                peer_capacity,
            } => {
                let (spec, cluster) = cluster.split();
                network::deploy_helm(
                    spec.as_deref(),
                    weft_network::helm::HelmOptions {
                        cluster,
                        peer_capacity,
                    },
                )
            }
            DeployCommand::Init {
                dir,
                timeout,
                reach,
                organization,
            } => network::deploy_init(
                dir.open(),
                timeout,
                match reach {
                    ReachArg::Local => weft_network::nodes::Reach::Local,
                    ReachArg::Containers => weft_network::nodes::Reach::Containers,
                    ReachArg::Kubernetes => weft_network::nodes::Reach::Kubernetes,
                    ReachArg::KubernetesPerOrganization => {
                        weft_network::nodes::Reach::KubernetesPerOrganization
                    }
                },
                organization.as_deref(),
            ),
        },
        Command::Health { target } => health(&target),
        Command::Events { command } => events::events(command),
        Command::Logs {
            node,
            dir,
            lines,
            follow,
        } => network::logs(dir.open(), &node, lines, follow),
        Command::Chaincode { command } => match command {
            ChaincodeCommand::Invoke(call) => network::chaincode(call, true),
            ChaincodeCommand::Query(call) => network::chaincode(call, false),
            ChaincodeCommand::Deploy(args) => deploy(args),
            ChaincodeCommand::Run { name, peer_address } => {
                let chaincode = builtin::named(&name)?;
                if std::env::var_os("CHAINCODE_SERVER_ADDRESS").is_some() {
                    return weft_shim_host::start(chaincode).map_err(anyhow::Error::msg);
                }
                runtime()?
                    .block_on(weft_shim_host::run_classic(chaincode, peer_address))
                    .map_err(anyhow::Error::msg)
            }
            ChaincodeCommand::Serve {
                name,
                address,
                id,
                tls_cert,
                tls_key,
            } => {
                let chaincode = builtin::named(&name)?;
                let tls = tls_cert
                    .zip(tls_key)
                    .map(|(cert, key)| weft_shim_host::ServerTls { cert, key });
                eprintln!("chaincode {id} ({name}) listening on {address}");
                runtime()?
                    .block_on(weft_shim_host::serve(
                        chaincode,
                        id,
                        address,
                        tls,
                        weft_shim_host::shutdown_signal(),
                    ))
                    .map_err(anyhow::Error::msg)
            }
        },
        Command::Supervise { dir } => network::supervise(weft_network::NetworkDir::new(dir)),
        Command::Validate { spec } => network::validate(&spec),
    }
}

/// `weft health`: Ok when the target is healthy.
fn health(target: &str) -> anyhow::Result<()> {
    if let Some(address) = target.strip_prefix("tcp://") {
        std::net::TcpStream::connect(address)
            .with_context(|| format!("{address} does not accept connections"))?;
        return Ok(());
    }
    let rest = target
        .strip_prefix("http://")
        .with_context(|| format!("{target}: expected http://host:port/path or tcp://host:port"))?;
    let (address, path) = rest
        .split_once('/')
        .map_or((rest, "/healthz".to_owned()), |(a, p)| (a, format!("/{p}")));
    let (status, body) =
        weft_network::monitor::http_get(address, &path).with_context(|| format!("GET {target}"))?;
    anyhow::ensure!(status == 200, "GET {target}: {status} {}", body.trim());
    Ok(())
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Binds the operations port, if configured, before the node starts (a
/// port in use stops the node with the port named).
async fn bind_operations(
    config: Option<&weft_node::operations::OperationsConfig>,
) -> anyhow::Result<Option<weft_node::operations::OperationsListener>> {
    let Some(config) = config else {
        return Ok(None);
    };
    Ok(Some(config.bind().await.map_err(anyhow::Error::msg)?))
}

/// Serves `/metrics`, `/healthz`, `/logspec` and `/version` in the background.
fn serve_operations(
    bound: Option<weft_node::operations::OperationsListener>,
    operations: std::sync::Arc<weft_node::operations::Operations>,
) {
    let Some(listener) = bound else {
        return;
    };
    eprintln!("operations service on {}", listener.url());
    tokio::spawn(async move {
        if let Err(e) =
            weft_node::operations::serve(operations, listener, std::future::pending()).await
        {
            eprintln!("{e}");
        }
    });
}

fn ca(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init {
            home,
            name,
            boot,
            port,
            address,
            hosts,
            common_name,
            no_tls,
        } => {
            let (user, password) = boot
                .split_once(':')
                .context("-b is written user:password")?;
            let mut options = weft_ca::InitOptions::new(&name, port);
            options.bootstrap = (user.to_owned(), password.to_owned());
            options.address = address;
            options.hosts = hosts;
            options.common_name = common_name.unwrap_or(name);
            options.tls = !no_tls;
            let path = weft_ca::config::init(&home, &options).map_err(anyhow::Error::msg)?;
            println!("CA initialised: {}", path.display());
            println!(
                "  root certificate: {}",
                home.join(weft_ca::config::CA_CERT_FILE).display()
            );
            println!("  start it with: weft ca start --home {}", home.display());
            Ok(())
        }
        CaCommand::Start { home, config } => {
            server_process()?;
            let path = config.unwrap_or_else(|| home.join(weft_ca::config::CONFIG_FILE));
            let config = weft_ca::CaConfig::load(&path).map_err(anyhow::Error::msg)?;
            let name = config.ca.name.clone();
            runtime()?.block_on(async move {
                let bound = weft_ca::BoundCa::bind(config)
                    .await
                    .map_err(anyhow::Error::msg)?;
                eprintln!("CA {name} listening on {}", bound.url());
                if let Some(url) = bound.operations_url() {
                    eprintln!("operations service on {url}");
                }
                bound
                    .serve(weft_shim_host::shutdown_signal())
                    .await
                    .map_err(anyhow::Error::msg)
            })
        }
    }
}

/// What every long-running server (orderer, peer, CA, REST gateway) does
/// first: its log, and as many open files as the system lets it have.
fn server_process() -> anyhow::Result<()> {
    weft_node::logging::init().map_err(anyhow::Error::msg)?;
    weft_node::limits::raise_open_files();
    Ok(())
}

fn orderer(command: OrdererCommand) -> anyhow::Result<()> {
    let OrdererCommand::Start { config } = command;
    server_process()?;
    let config = weft_orderer::OrdererConfig::load(&config).map_err(anyhow::Error::msg)?;
    runtime()?.block_on(async move {
        let address = config.listen_address.clone();
        let listener = weft_node::serve::bind(&address)
            .await
            .map_err(anyhow::Error::msg)?;
        let operations = bind_operations(config.operations.as_ref()).await?;
        let node = weft_orderer::Orderer::start(config)
            .await
            .map_err(anyhow::Error::msg)?;
        eprintln!(
            "orderer listening on {address} (channels: {})",
            node.channels().len()
        );
        serve_operations(operations, std::sync::Arc::clone(&node.operations));
        weft_orderer::serve(node, listener, weft_shim_host::shutdown_signal())
            .await
            .map_err(anyhow::Error::msg)
    })
}

fn channel(command: ChannelCommand) -> anyhow::Result<()> {
    let GenesisArgs {
        channel_id,
        organizations,
        spec,
        consenters,
        batch_timeout,
        max_message_count,
        output_block,
    } = match command {
        ChannelCommand::Create {
            name,
            organizations,
            dir,
            timeout,
        } => return network::channel_create(dir.open(), &name, organizations, timeout),
        ChannelCommand::Join { name, peers, dir } => {
            return network::channel_join(dir.open(), &name, peers);
        }
        ChannelCommand::Genesis(args) => args,
    };
    let spec = spec.map(|path| load_spec(Some(&path))).transpose()?;
    let consenters = match (&spec, consenters.is_empty()) {
        (Some(spec), true) => weft_network::nodes::nodes(spec)
            .into_iter()
            .filter(|node| matches!(node.role, weft_network::nodes::Role::Orderer { .. }))
            .map(|node| node.address())
            .collect(),
        _ => consenters,
    };
    let consenters = consenters
        .iter()
        .enumerate()
        .map(|(index, endpoint)| {
            let (host, port) = endpoint
                .rsplit_once(':')
                .with_context(|| format!("consenter {endpoint:?}: expected host:port"))?;
            Ok(weft_material::channel::ConsenterNode {
                host: host.to_owned(),
                port: port
                    .parse()
                    .with_context(|| format!("consenter {endpoint:?}: bad port"))?,
                index: index as u32,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut batch = weft_channel::BatchSettings {
        max_message_count: 10,
        timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    if let Some(spec) = &spec {
        let size = &spec.orderers.batch_size;
        batch = weft_channel::BatchSettings {
            max_message_count: size.max_message_count,
            absolute_max_bytes: size.absolute_max_bytes,
            preferred_max_bytes: size.preferred_max_bytes,
            timeout: spec.batch_timeout(),
        };
    }
    if let Some(count) = max_message_count {
        batch.max_message_count = count;
    }
    if let Some(timeout) = batch_timeout {
        batch.timeout = weft_channel::parse_duration(&timeout)
            .map_err(|e| anyhow::anyhow!("--batch-timeout: {e}"))?;
    }
    let (members, orderer): (Vec<(String, String)>, (String, String)) = match &spec {
        Some(spec) => {
            let orgs = match spec.channels.iter().find(|c| c.name == channel_id) {
                Some(channel) => spec.channel_organizations(channel),
                None => spec.organizations.iter().collect(),
            };
            let orderer = &spec.orderers.organization;
            (
                orgs.iter()
                    .map(|o| (o.domain.clone(), o.msp_id.clone()))
                    .collect(),
                (orderer.domain.clone(), orderer.msp_id.clone()),
            )
        }
        None => (
            vec![
                ("org1.example.com".into(), "Org1MSP".into()),
                ("org2.example.com".into(), "Org2MSP".into()),
            ],
            ("example.com".into(), "OrdererMSP".into()),
        ),
    };
    let members: Vec<(&str, &str)> = members
        .iter()
        .map(|(domain, msp)| (domain.as_str(), msp.as_str()))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let profile = weft_material::channel::channel_profile(
        &organizations,
        &channel_id,
        &members,
        (&orderer.0, &orderer.1),
        &consenters,
        batch,
        now,
    )?;
    let block = weft_channel::genesis_block(&profile)?;
    std::fs::write(&output_block, weft_protos::Message::encode_to_vec(&block))
        .with_context(|| format!("writing {}", output_block.display()))?;
    println!(
        "wrote the genesis block of {channel_id} ({}; {} consenters) to {}",
        members
            .iter()
            .map(|(_, msp)| *msp)
            .collect::<Vec<_>>()
            .join(", "),
        consenters.len(),
        output_block.display()
    );
    Ok(())
}

fn peer(command: PeerCommand) -> anyhow::Result<()> {
    match command {
        PeerCommand::Start { config } => {
            server_process()?;
            let config = weft_peer::PeerConfig::load(&config).map_err(anyhow::Error::msg)?;
            runtime()?.block_on(async move {
                let address = config.listen_address.clone();
                let listener = weft_node::serve::bind(&address)
                    .await
                    .map_err(anyhow::Error::msg)?;
                let operations = bind_operations(config.operations.as_ref()).await?;
                let node = weft_peer::Peer::start(config, &builtin::builtins())
                    .await
                    .map_err(anyhow::Error::msg)?;
                eprintln!(
                    "peer listening on {address} (channels: {})",
                    node.channels().len()
                );
                serve_operations(operations, node.operations());
                let result = weft_peer::serve(
                    std::sync::Arc::clone(&node),
                    listener,
                    weft_shim_host::shutdown_signal(),
                )
                .await
                .map_err(anyhow::Error::msg);
                node.shutdown();
                result
            })
        }
        PeerCommand::Snapshot { command } => snapshot::run(command),
        PeerCommand::Lifecycle { command } => {
            let PeerLifecycleCommand::Chaincode { command, peer } = *command;
            lifecycle::run(command, peer)
        }
        PeerCommand::Channel { command, peer } => admin::peer_channel(command, peer),
        PeerCommand::Chaincode { command } => admin::peer_chaincode(command),
    }
}

fn osnadmin(command: OsnadminCommand) -> anyhow::Result<()> {
    let OsnadminCommand::Channel {
        command,
        connection,
    } = command;
    admin::osnadmin_channel(command, connection)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
