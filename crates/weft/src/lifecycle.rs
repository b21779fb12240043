//! `weft peer lifecycle chaincode approveformyorg|checkcommitreadiness|commit|querycommitted`:
//! Fabric's `peer lifecycle chaincode` commands with Fabric's flags and
//! `CORE_PEER_*` environment, sent through the peer's gateway.

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

fn gateway(peer: PeerArgs) -> anyhow::Result<(String, Gateway)> {
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
    let gateway = Gateway::connect(&address, &tls_ca, identity)?;
    Ok((address, gateway))
}

fn json_wanted(output: &Option<String>) -> anyhow::Result<bool> {
    match output.as_deref() {
        None => Ok(false),
        Some("json") => Ok(true),
        Some(other) => anyhow::bail!("--output {other:?}: only json is supported"),
    }
}

pub fn run(command: Command, peer: PeerArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let (address, gateway) = {
        let _context = runtime.enter();
        gateway(peer)?
    };
    runtime.block_on(async move {
        match command {
            Command::Approve {
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
            Command::Commit { definition } => {
                let channel = definition.channel.clone();
                let definition = definition.definition()?;
                let done = gateway.commit_definition(&channel, &definition).await?;
                println!(
                    "txid [{}] committed with status (VALID) at {address} (block {})",
                    done.tx_id, done.block
                );
            }
            Command::CheckCommitReadiness { definition, output } => {
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
            Command::QueryCommitted {
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
            Command::QueryCommitted {
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
