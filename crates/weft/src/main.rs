//! The `weft` binary: one executable, one sub-command per role or tool.
//!
//! Invariant: argument parsing, file reading and printing only; every piece of
//! behaviour lives in a library crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weft_material::cryptogen::{self, CryptogenConfig};
use weft_spec::NetworkSpec;

#[derive(Parser)]
#[command(name = "weft", version, about = "A Hyperledger Fabric-compatible blockchain platform", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        Command::Validate { spec } => {
            let spec = load_spec(Some(&spec))?;
            println!("network {}: valid", spec.name);
            for org in &spec.organizations {
                println!(
                    "  {} ({}): {} peer(s), {} user(s), domain {}",
                    org.name, org.msp_id, org.peers, org.users, org.domain
                );
            }
            let orderer = &spec.orderers.organization;
            println!(
                "  {} ({}): {} Raft node(s), domain {}",
                orderer.name, orderer.msp_id, spec.orderers.nodes, orderer.domain
            );
            Ok(())
        }
    }
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
