//! `weft rest`: the REST gateway and its API keys.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum RestCommand {
    /// Run the REST gateway (`weft up` runs one for its network).
    Start {
        /// Its configuration (rest.yaml).
        #[arg(long)]
        config: PathBuf,
    },
    /// API keys: each acts as one identity of the gateway.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key acting as ORG/USER; it is printed once, and stored hashed.
    Create {
        /// The organisation (`Org1`).
        #[arg(long)]
        org: String,
        /// The user (`User1`, `Admin`).
        #[arg(long)]
        user: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the keys (ids, identities, whether revoked).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a key by its id (the middle part of the key); effective within a second.
    Revoke {
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Which gateway: a `weft up` network's, or one by its configuration.
#[derive(clap::Args)]
pub struct Target {
    /// The network directory (its rest/rest.yaml).
    #[arg(long, default_value = weft_network::DEFAULT_DIR, conflicts_with = "config")]
    dir: PathBuf,
    /// A REST gateway's configuration file instead.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl Target {
    fn load(&self) -> anyhow::Result<(PathBuf, weft_rest::RestConfig)> {
        let path = match &self.config {
            Some(path) => path.clone(),
            None => weft_network::rest::config(&weft_network::NetworkDir::new(&self.dir)),
        };
        if !path.is_file() {
            anyhow::bail!(
                "{}: no REST gateway configuration (a network runs one when its spec has `rest:` or uses the default ports; or pass --config)",
                path.display()
            );
        }
        let (config, _) = weft_rest::RestConfig::load(&path).map_err(anyhow::Error::msg)?;
        Ok((path, config))
    }
}

pub fn rest(command: RestCommand) -> anyhow::Result<()> {
    match command {
        RestCommand::Start { config } => start(&config),
        RestCommand::Key { command } => key(command),
    }
}

fn start(path: &Path) -> anyhow::Result<()> {
    crate::server_process()?;
    let (config, timing) = weft_rest::RestConfig::load(path).map_err(anyhow::Error::msg)?;
    let listen = config.listen.clone();
    let identities = config.identities.len();
    crate::runtime()?.block_on(async move {
        let listener = weft_node::serve::bind(&listen)
            .await
            .map_err(anyhow::Error::msg)?;
        let rest = weft_rest::Rest::new(config, timing).map_err(anyhow::Error::msg)?;
        eprintln!(
            "REST gateway on http://{listen}/api/v1 ({identities} identities; OpenAPI at /api/v1/openapi.json)"
        );
        weft_rest::serve(rest, listener, weft_shim_host::shutdown_signal())
            .await
            .map_err(anyhow::Error::msg)
    })
}

fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create { org, user, target } => {
            let (path, config) = target.load()?;
            let identity = format!("{org}/{user}");
            if !config.identities.contains_key(&identity) {
                anyhow::bail!(
                    "{}: no identity {identity} (identities: {})",
                    path.display(),
                    config
                        .identities
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let (id, key) =
                weft_rest::keys::create(&config.keys, &identity).map_err(anyhow::Error::msg)?;
            eprintln!("key {id} acts as {identity}; it is shown once:");
            println!("{key}");
            Ok(())
        }
        KeyCommand::List { target } => {
            let (_, config) = target.load()?;
            for key in weft_rest::keys::list(&config.keys).map_err(anyhow::Error::msg)? {
                println!(
                    "{}  {:<16} created {}{}",
                    key.id,
                    key.identity,
                    key.created,
                    if key.revoked { "  revoked" } else { "" }
                );
            }
            Ok(())
        }
        KeyCommand::Revoke { id, target } => {
            let (_, config) = target.load()?;
            let found = weft_rest::keys::revoke(&config.keys, &id)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("revoking key {id}"))?;
            if !found {
                anyhow::bail!("no key {id} (weft rest key list shows them)");
            }
            println!("key {id} revoked");
            Ok(())
        }
    }
}
