//! `weft peer lifecycle chaincode package|calculatepackageid|install|queryinstalled|
//! getinstalledpackage|approveformyorg|checkcommitreadiness|commit|querycommitted`:
//! Fabric's `peer lifecycle chaincode` commands with Fabric's flags and
//! `CORE_PEER_*` environment. Definitions go through the peer's gateway;
//! installs go to the named peer's endorser.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use weft_client::Gateway;
use weft_client::lifecycle::{DEFAULT_POLICY_REFERENCE, Definition};

use crate::runtime;

/// Which peer, as whom. Flags win over Fabric's `CORE_PEER_*` variables.
#[derive(clap::Args)]
pub struct PeerArgs {
    /// The gateway peer (host:port); CORE_PEER_ADDRESS by default. Fabric
    /// scripts pass one per organisation; weft's gateway gathers the other
    /// organisations' endorsements itself, so the first is used.
    #[arg(long = "peerAddresses", global = true)]
    peer_addresses: Vec<String>,
    /// CA certificate of the peer's TLS certificate; CORE_PEER_TLS_ROOTCERT_FILE by default.
    #[arg(long = "tlsRootCertFiles", global = true)]
    tls_root_cert_files: Vec<PathBuf>,
    /// The admin's MSP directory; CORE_PEER_MSPCONFIGPATH by default.
    #[arg(long = "mspConfigPath", global = true)]
    msp_config_path: Option<PathBuf>,
    /// The admin's MSP ID; CORE_PEER_LOCALMSPID by default.
    #[arg(long = "localMspId", global = true)]
    local_msp_id: Option<String>,
    /// Accepted for Fabric scripts; weft submits through the peer's gateway,
    /// which knows the orderers.
    #[arg(short = 'o', long = "orderer", global = true, hide = true)]
    _orderer: Option<String>,
    #[arg(long = "ordererTLSHostnameOverride", global = true, hide = true)]
    _orderer_host: Option<String>,
    #[arg(long = "cafile", global = true, hide = true)]
    _cafile: Option<PathBuf>,
    #[arg(long = "tls", global = true, hide = true)]
    _tls: bool,
}

/// A definition as Fabric's flags give it.
#[derive(clap::Args)]
pub struct DefinitionArgs {
    #[arg(short = 'C', long = "channelID")]
    channel: String,
    #[arg(short = 'n', long = "name")]
    name: String,
    #[arg(short = 'v', long = "version")]
    version: String,
    #[arg(long = "sequence")]
    sequence: i64,
    /// The endorsement policy (`AND('Org1MSP.peer','Org2MSP.peer')`).
    #[arg(long = "signature-policy", conflicts_with = "channel_config_policy")]
    signature_policy: Option<String>,
    /// A channel policy as the endorsement policy; the default,
    /// /Channel/Application/Endorsement, is the only one weft accepts.
    #[arg(long = "channel-config-policy")]
    channel_config_policy: Option<String>,
    /// Private data collections, in Fabric's collections_config.json format.
    #[arg(long = "collections-config")]
    collections_config: Option<std::path::PathBuf>,
}

impl DefinitionArgs {
    fn definition(&self) -> anyhow::Result<Definition> {
        if let Some(policy) = &self.channel_config_policy
            && policy != DEFAULT_POLICY_REFERENCE
        {
            anyhow::bail!(
                "--channel-config-policy {policy:?}: only {DEFAULT_POLICY_REFERENCE} is supported; use --signature-policy"
            );
        }
        let collections = match &self.collections_config {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--collections-config {}: {e}", path.display()))?;
                Some(weft_client::lifecycle::collections_config(
                    &text,
                    &path.display().to_string(),
                )?)
            }
        };
        Ok(Definition {
            name: self.name.clone(),
            version: self.version.clone(),
            sequence: self.sequence,
            endorsement_policy: self.signature_policy.clone(),
            collections,
        })
    }
}

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Peer(PeerCommand),
    #[command(flatten)]
    Channel(ChannelCommand),
}

/// Commands on one peer's installed packages (or none: packaging).
#[derive(Subcommand)]
pub enum PeerCommand {
    /// Make an install package (`.tar.gz`) from a chaincode's directory.
    Package {
        /// The package file to write.
        output: PathBuf,
        /// The chaincode's directory (node: with package.json; ccaas and
        /// external: with connection.json; META-INF/ is included).
        #[arg(short = 'p', long = "path")]
        path: PathBuf,
        /// node, ccaas or external (golang and java are not built by weft
        /// peers: run them as a service).
        #[arg(short = 'l', long = "lang", default_value = "golang")]
        lang: String,
        /// The package's label (a package id is `<label>:<hash>`).
        #[arg(long = "label")]
        label: String,
    },
    /// Print the package id of an install package.
    #[command(name = "calculatepackageid")]
    CalculatePackageId {
        package: PathBuf,
        /// `json` for machine-readable output.
        #[arg(short = 'O', long = "output")]
        output: Option<String>,
    },
    /// Install a package on the peer (as an admin of its organisation).
    Install { package: PathBuf },
    /// The packages installed on the peer.
    #[command(name = "queryinstalled")]
    QueryInstalled {
        /// `json` for machine-readable output.
        #[arg(short = 'O', long = "output")]
        output: Option<String>,
    },
    /// Write an installed package to a file (`<package id>.tar.gz`).
    #[command(name = "getinstalledpackage")]
    GetInstalledPackage {
        #[arg(long = "package-id")]
        package_id: String,
        /// Where to write it; the current directory by default.
        #[arg(long = "output-directory", default_value = ".")]
        output_directory: PathBuf,
    },
}

/// Commands on a channel's chaincode definitions.
#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Approve a chaincode definition for your organisation.
    #[command(name = "approveformyorg")]
    Approve {
        #[command(flatten)]
        definition: DefinitionArgs,
        /// The package your organisation's peers run (their installed chaincode's id).
        #[arg(long = "package-id")]
        package_id: Option<String>,
    },
    /// Which organisations have approved a chaincode definition.
    #[command(name = "checkcommitreadiness")]
    CheckCommitReadiness {
        #[command(flatten)]
        definition: DefinitionArgs,
        /// `json` for machine-readable output.
        #[arg(short = 'O', long = "output")]
        output: Option<String>,
    },
    /// Commit a chaincode definition approved by enough organisations.
    Commit {
        #[command(flatten)]
        definition: DefinitionArgs,
    },
    /// The committed chaincode definitions of a channel.
    #[command(name = "querycommitted")]
    QueryCommitted {
        #[arg(short = 'C', long = "channelID")]
        channel: String,
        /// One chaincode; every one when omitted.
        #[arg(short = 'n', long = "name")]
        name: Option<String>,
        /// `json` for machine-readable output.
        #[arg(short = 'O', long = "output")]
        output: Option<String>,
    },
}

pub(crate) fn flag_or_env<T: From<String>>(
    flag: Option<T>,
    variable: &str,
    name: &str,
) -> anyhow::Result<T> {
    match flag {
        Some(value) => Ok(value),
        None => std::env::var(variable)
            .map(T::from)
            .with_context(|| format!("--{name} is required (or set {variable})")),
    }
}

struct Target {
    address: String,
    tls_ca: PathBuf,
    identity: weft_material::SigningIdentity,
}

fn target(peer: PeerArgs) -> anyhow::Result<Target> {
    let address = flag_or_env(
        peer.peer_addresses.into_iter().next(),
        "CORE_PEER_ADDRESS",
        "peerAddresses",
    )?;
    let tls_ca: PathBuf = flag_or_env(
        peer.tls_root_cert_files.into_iter().next(),
        "CORE_PEER_TLS_ROOTCERT_FILE",
        "tlsRootCertFiles",
    )?;
    let msp_dir: PathBuf = flag_or_env(
        peer.msp_config_path,
        "CORE_PEER_MSPCONFIGPATH",
        "mspConfigPath",
    )?;
    let msp_id: String = flag_or_env(peer.local_msp_id, "CORE_PEER_LOCALMSPID", "localMspId")?;
    let identity = weft_material::SigningIdentity::load(&msp_dir, &msp_id)
        .with_context(|| format!("loading the identity in {}", msp_dir.display()))?;
    Ok(Target {
        address,
        tls_ca,
        identity,
    })
}

fn gateway(peer: PeerArgs) -> anyhow::Result<(String, Gateway)> {
    let target = target(peer)?;
    let gateway = Gateway::connect(&target.address, &target.tls_ca, target.identity)?;
    Ok((target.address, gateway))
}

/// A chaincode call as Fabric's `peer chaincode invoke|query` takes it.
#[derive(clap::Args)]
pub struct CallArgs {
    #[arg(short = 'C', long = "channelID")]
    channel: String,
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The call: `{"Args":["CreateAsset","a1","blue"]}` or
    /// `{"function":"CreateAsset","Args":["a1","blue"]}`.
    #[arg(short = 'c', long = "ctor")]
    ctor: String,
    /// Private inputs: a JSON object of base64 values (`GetTransient`).
    #[arg(long = "transient")]
    transient: Option<String>,
    /// Accepted for Fabric scripts: weft's invoke always waits for the commit.
    #[arg(long = "waitForEvent", hide = true)]
    _wait_for_event: bool,
    /// Fabric's init call; weft refuses `init_required` definitions, so
    /// this is refused too.
    #[arg(short = 'I', long = "isInit", hide = true)]
    is_init: bool,
}

/// `peer chaincode invoke` (`submit`) or `query`, through the peer's gateway.
pub fn call(call: CallArgs, peer: PeerArgs, submit: bool) -> anyhow::Result<()> {
    if call.is_init {
        anyhow::bail!(
            "--isInit: weft does not support init_required definitions; call the function directly"
        );
    }
    let args = crate::network::fabric_ctor(&call.ctor)?;
    let transient = call
        .transient
        .as_deref()
        .map(crate::network::fabric_transient)
        .transpose()?;
    let runtime = runtime()?;
    let (_, gateway) = {
        let _context = runtime.enter();
        gateway(peer)?
    };
    let gateway = match transient {
        Some(transient) => gateway.with_transient(transient),
        None => gateway,
    };
    runtime.block_on(async move {
        if submit {
            let done = gateway.submit(&call.channel, &call.name, &args).await?;
            eprintln!(
                "Chaincode invoke successful. result: status:200 payload:{:?} (txid {}, block {})",
                String::from_utf8_lossy(&done.result),
                done.tx_id,
                done.block
            );
        } else {
            let payload = gateway.evaluate(&call.channel, &call.name, &args).await?;
            use std::io::Write;
            let mut out = std::io::stdout();
            out.write_all(&payload)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
}

fn read_package(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the package {}", path.display()))
}

/// The commands that act on one peer (its endorser), not on a channel.
fn run_local(command: PeerCommand, peer: PeerArgs) -> anyhow::Result<()> {
    match command {
        PeerCommand::Package {
            output,
            path,
            lang,
            label,
        } => {
            let bytes = weft_peer::package::build(&lang.to_ascii_lowercase(), &label, &path)
                .map_err(anyhow::Error::msg)?;
            std::fs::write(&output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "packaged {} as {} (package id {})",
                path.display(),
                output.display(),
                weft_peer::package::package_id(&label, &bytes)
            );
        }
        PeerCommand::CalculatePackageId { package, output } => {
            let json = json_wanted(&output)?;
            let parsed = weft_peer::package::Package::parse(&read_package(&package)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", package.display()))?;
            if json {
                println!("{}", serde_json::json!({ "package_id": parsed.id }));
            } else {
                println!("{}", parsed.id);
            }
        }
        PeerCommand::Install { package } => {
            let bytes = read_package(&package)?;
            let runtime = runtime()?;
            let admin = admin(&runtime, peer)?;
            let installed = runtime
                .block_on(admin.install(bytes))
                .map_err(|e| anyhow::anyhow!("chaincode install failed with status: {e}"))?;
            println!(
                "Chaincode code package identifier: {}",
                installed.package_id
            );
        }
        PeerCommand::QueryInstalled { output } => {
            let json = json_wanted(&output)?;
            let runtime = runtime()?;
            let admin = admin(&runtime, peer)?;
            let installed = runtime
                .block_on(admin.installed())
                .map_err(|e| anyhow::anyhow!("query failed with status: {e}"))?;
            if json {
                let list: Vec<_> = installed
                    .iter()
                    .map(|p| serde_json::json!({"package_id": p.package_id, "label": p.label}))
                    .collect();
                println!("{}", serde_json::json!({ "installed_chaincodes": list }));
            } else {
                println!("Installed chaincodes on peer:");
                for p in installed {
                    println!("Package ID: {}, Label: {}", p.package_id, p.label);
                }
            }
        }
        PeerCommand::GetInstalledPackage {
            package_id,
            output_directory,
        } => {
            let runtime = runtime()?;
            let admin = admin(&runtime, peer)?;
            let bytes = runtime
                .block_on(admin.installed_package(&package_id))
                .map_err(|e| anyhow::anyhow!("query failed with status: {e}"))?;
            std::fs::create_dir_all(&output_directory)
                .with_context(|| format!("creating {}", output_directory.display()))?;
            let file = output_directory.join(format!("{package_id}.tar.gz"));
            std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
            eprintln!("wrote {}", file.display());
        }
    }
    Ok(())
}

fn admin(
    runtime: &tokio::runtime::Runtime,
    peer: PeerArgs,
) -> anyhow::Result<weft_client::lifecycle::PeerAdmin> {
    let _context = runtime.enter();
    let target = target(peer)?;
    let ca = std::fs::read(&target.tls_ca)
        .with_context(|| format!("reading {}", target.tls_ca.display()))?;
    Ok(weft_client::lifecycle::PeerAdmin::connect(
        &target.address,
        ca,
        target.identity,
    )?)
}

fn json_wanted(output: &Option<String>) -> anyhow::Result<bool> {
    match output.as_deref() {
        None => Ok(false),
        Some("json") => Ok(true),
        Some(other) => anyhow::bail!("--output {other:?}: only json is supported"),
    }
}

pub fn run(command: Command, peer: PeerArgs) -> anyhow::Result<()> {
    let command = match command {
        Command::Peer(command) => return run_local(command, peer),
        Command::Channel(command) => command,
    };
    let runtime = runtime()?;
    let (address, gateway) = {
        let _context = runtime.enter();
        gateway(peer)?
    };
    runtime.block_on(async move {
        match command {
            ChannelCommand::Approve {
                definition,
                package_id,
            } => {
                let channel = definition.channel.clone();
                let definition = definition.definition()?;
                let done = gateway
                    .approve_definition(&channel, &definition, package_id.as_deref())
                    .await?;
                println!(
                    "txid [{}] committed with status (VALID) at {address} (block {})",
                    done.tx_id, done.block
                );
            }
            ChannelCommand::Commit { definition } => {
                let channel = definition.channel.clone();
                let definition = definition.definition()?;
                let done = gateway.commit_definition(&channel, &definition).await?;
                println!(
                    "txid [{}] committed with status (VALID) at {address} (block {})",
                    done.tx_id, done.block
                );
            }
            ChannelCommand::CheckCommitReadiness { definition, output } => {
                let json = json_wanted(&output)?;
                let channel = definition.channel.clone();
                let definition = definition.definition()?;
                let approvals = gateway.commit_readiness(&channel, &definition).await?;
                if json {
                    println!("{}", serde_json::json!({ "approvals": approvals }));
                } else {
                    println!(
                        "Chaincode definition for chaincode '{}', version '{}', sequence '{}' on channel '{channel}' approval status by org:",
                        definition.name, definition.version, definition.sequence
                    );
                    for (org, approved) in approvals {
                        println!("{org}: {approved}");
                    }
                }
            }
            ChannelCommand::QueryCommitted {
                channel,
                name: Some(name),
                output,
            } => {
                let json = json_wanted(&output)?;
                let defined = gateway
                    .committed_definition(&channel, &name)
                    .await?
                    .with_context(|| {
                        format!("chaincode {name} is not defined on channel {channel}")
                    })?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "sequence": defined.sequence,
                            "version": defined.version,
                            "endorsement_plugin": plugin(&defined.endorsement_plugin, "escc"),
                            "validation_plugin": plugin(&defined.validation_plugin, "vscc"),
                            "approvals": defined.approvals,
                        })
                    );
                } else {
                    let approvals: Vec<String> = defined
                        .approvals
                        .iter()
                        .map(|(org, approved)| format!("{org}: {approved}"))
                        .collect();
                    println!("Committed chaincode definition for chaincode '{name}' on channel '{channel}':");
                    println!(
                        "Version: {}, Sequence: {}, Endorsement Plugin: {}, Validation Plugin: {}, Approvals: [{}]",
                        defined.version,
                        defined.sequence,
                        plugin(&defined.endorsement_plugin, "escc"),
                        plugin(&defined.validation_plugin, "vscc"),
                        approvals.join(", ")
                    );
                }
            }
            ChannelCommand::QueryCommitted {
                channel,
                name: None,
                output,
            } => {
                let json = json_wanted(&output)?;
                let defined = gateway.committed_definitions(&channel).await?;
                if json {
                    let list: Vec<_> = defined
                        .iter()
                        .map(|d| {
                            serde_json::json!({
                                "name": d.name,
                                "sequence": d.sequence,
                                "version": d.version,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::json!({ "chaincode_definitions": list }));
                } else {
                    println!("Committed chaincode definitions on channel '{channel}':");
                    for d in defined {
                        println!(
                            "Name: {}, Version: {}, Sequence: {}, Endorsement Plugin: {}, Validation Plugin: {}",
                            d.name,
                            d.version,
                            d.sequence,
                            plugin(&d.endorsement_plugin, "escc"),
                            plugin(&d.validation_plugin, "vscc")
                        );
                    }
                }
            }
        }
        Ok(())
    })
}

/// A plugin name as Fabric shows it (empty means the default).
fn plugin<'a>(name: &'a str, default: &'a str) -> &'a str {
    if name.is_empty() { default } else { name }
}
