//! Chaincode packages installed on the peer with Fabric's
//! `_lifecycle.InstallChaincode` (`peer lifecycle chaincode install`).
//!
//! A package is checked and made runnable before it is acknowledged: a
//! `ccaas`/`external` package's `connection.json` is read, a `node`
//! package is unpacked and its npm dependencies installed. Then it is
//! written to `<data_dir>/lifecycle/chaincodes/<label>.<hash>.tar.gz`
//! (Fabric's layout; written to a temporary name, synced and renamed, so an
//! acknowledged install survives a crash and a torn one is never read), and
//! registered with chaincode support. At start the peer installs every
//! package found there again.
//!
//! A package's index definitions (`META-INF/statedb/couchdb/indexes`) are
//! declared in the namespace of the chaincode that runs it, on each
//! channel, before its first transaction there.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::chaincode::ChaincodeSupport;
use crate::chaincode::launcher::{self, Launcher, PeerContact};
use crate::channel::PeerChannel;
use crate::package::{Package, Runtime};

/// The longest `npm install` of a Node package may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// What launchers of installed packages need from the peer.
#[derive(Clone)]
pub struct LaunchContext {
    pub contact: PeerContact,
    /// The peer's TLS identity, presented to chaincode servers.
    pub tls_identity: tonic::transport::Identity,
    /// Where classic chaincodes' credentials and logs go.
    pub chaincode_dir: PathBuf,
}

/// An installed package, as `queryinstalled` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub package_id: String,
    pub label: String,
}

struct Entry {
    label: String,
    file: PathBuf,
    indexes: Vec<(String, String)>,
}

/// The installed packages of one peer.
pub struct Packages {
    dir: PathBuf,
    builds: PathBuf,
    context: LaunchContext,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// (channel, namespace, package id) whose indexes are declared.
    indexed: Mutex<HashSet<(String, String, String)>>,
    /// One install at a time (builds are heavy; ids are checked once).
    installing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Packages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packages").field("dir", &self.dir).finish()
    }
}

/// `<label>.<hash>`: the package's file stem (Fabric's naming).
fn file_stem(package_id: &str) -> String {
    package_id.replacen(':', ".", 1)
}

impl Packages {
    /// Opens `<data_dir>/lifecycle` and installs every package in it into
    /// `support`. A package that cannot run any more (its build failed) is
    /// listed and its transactions fail with the reason.
    pub fn open(
        data_dir: &Path,
        context: LaunchContext,
        support: &ChaincodeSupport,
    ) -> Result<Packages, String> {
        let dir = data_dir.join("lifecycle").join("chaincodes");
        let builds = data_dir.join("lifecycle").join("builds");
        for d in [&dir, &builds] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let packages = Packages {
            dir,
            builds,
            context,
            entries: Mutex::default(),
            indexed: Mutex::default(),
            installing: tokio::sync::Mutex::new(()),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&packages.dir)
            .map_err(|e| format!("{}: {e}", packages.dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let package = Package::parse(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            let launcher = package
                .runtime()
                .and_then(|runtime| packages.launcher(&package, runtime, false));
            let launcher = launcher.unwrap_or_else(|reason| {
                tracing::error!(
                    "installed package {}: {reason}; its transactions fail",
                    package.id
                );
                support.mark_unreachable(&package.id, &reason);
                Arc::new(launcher::Broken { reason })
            });
            support.install(&package.id, &package.metadata.label, launcher)?;
            packages.remember(&package, file, package.indexes()?);
        }
        Ok(packages)
    }

    fn remember(&self, package: &Package, file: PathBuf, indexes: Vec<(String, String)>) {
        self.entries().insert(
            package.id.clone(),
            Entry {
                label: package.metadata.label.clone(),
                file,
                indexes,
            },
        );
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs an install package: checked, built, stored durably, then
    /// runnable. Err (and nothing stored) for a package that cannot run
    /// here or is installed already.
    pub async fn install(
        &self,
        bytes: Vec<u8>,
        support: &ChaincodeSupport,
    ) -> Result<InstalledPackage, String> {
        let _one = self.installing.lock().await;
        let package = Package::parse(&bytes)?;
        if support.is_installed(&package.id) {
            return Err(format!(
                "chaincode already successfully installed (package ID '{}')",
                package.id
            ));
        }
        let runtime = package.runtime()?;
        let indexes = package.indexes()?;
        for (file, definition) in &indexes {
            weft_ledger::IndexDefinition::parse(definition)
                .map_err(|e| format!("index META-INF/statedb/couchdb/indexes/{file}: {e}"))?;
        }
        let package = if let Runtime::Node = runtime {
            let builds = self.builds.clone();
            tokio::task::spawn_blocking(move || build_node(&package, &builds).map(|()| package))
                .await
                .map_err(|e| e.to_string())??
        } else {
            package
        };
        let launcher = self.launcher(&package, runtime, true)?;
        let file = self.dir.join(format!("{}.tar.gz", file_stem(&package.id)));
        write_durably(&file, &bytes)?;
        support.install(&package.id, &package.metadata.label, launcher)?;
        self.remember(&package, file, indexes);
        tracing::info!(
            "installed chaincode package {} (type {})",
            package.id,
            package.metadata.kind
        );
        Ok(InstalledPackage {
            package_id: package.id,
            label: package.metadata.label,
        })
    }

    /// How the peer reaches `package`. `fresh`: just built (else a Node
    /// package's build must be complete from an earlier install).
    fn launcher(
        &self,
        package: &Package,
        runtime: Runtime,
        fresh: bool,
    ) -> Result<Arc<dyn Launcher>, String> {
        let id = package.id.clone();
        Ok(match runtime {
            Runtime::Service(connection) => {
                let client_identity = if connection.client_auth_required {
                    tonic::transport::Identity::from_pem(
                        &connection.client_cert,
                        &connection.client_key,
                    )
                } else {
                    self.context.tls_identity.clone()
                };
                Arc::new(launcher::External {
                    id,
                    address: connection.address,
                    tls_root_ca: connection
                        .tls_required
                        .then(|| connection.root_cert.into_bytes()),
                    client_identity,
                })
            }
            Runtime::Node => {
                let src = self.builds.join(file_stem(&id)).join("src");
                if !fresh && !src.join(BUILT).is_file() {
                    return Err(format!(
                        "its build in {} is incomplete; install the package again after removing {}",
                        src.display(),
                        self.dir
                            .join(format!("{}.tar.gz", file_stem(&id)))
                            .display()
                    ));
                }
                let start = node_start(&src)?;
                Arc::new(launcher::Process {
                    id: id.clone(),
                    command: vec![
                        "sh".into(),
                        "-c".into(),
                        format!("PATH=\"$PWD/node_modules/.bin:$PATH\" exec {start} \"$@\""),
                        "sh".into(),
                        "--peer.address".into(),
                        "{peer_address}".into(),
                    ],
                    dir: Some(src),
                    env: BTreeMap::new(),
                    contact: self.context.contact.clone(),
                    work_dir: self.context.chaincode_dir.join(id.replace(':', "_")),
                    child: Default::default(),
                })
            }
        })
    }

    /// The installed packages, by package id.
    pub fn list(&self) -> Vec<InstalledPackage> {
        self.entries()
            .iter()
            .map(|(id, entry)| InstalledPackage {
                package_id: id.clone(),
                label: entry.label.clone(),
            })
            .collect()
    }

    /// The bytes of an installed package.
    pub fn get(&self, package_id: &str) -> Result<Vec<u8>, String> {
        let file = self
            .entries()
            .get(package_id)
            .map(|e| e.file.clone())
            .ok_or_else(|| not_installed(package_id))?;
        std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// One installed package, if installed.
    pub fn find(&self, package_id: &str) -> Result<InstalledPackage, String> {
        self.entries()
            .get(package_id)
            .map(|entry| InstalledPackage {
                package_id: package_id.to_owned(),
                label: entry.label.clone(),
            })
            .ok_or_else(|| not_installed(package_id))
    }

    /// Whether package `package_id` has indexes not yet declared in
    /// `namespace` on `channel` (a quick check, without I/O).
    pub fn has_undeclared_indexes(
        &self,
        channel: &PeerChannel,
        namespace: &str,
        package_id: &str,
    ) -> bool {
        let has = self
            .entries()
            .get(package_id)
            .is_some_and(|entry| !entry.indexes.is_empty());
        has && !self
            .indexed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(
                channel.id.clone(),
                namespace.to_owned(),
                package_id.to_owned(),
            ))
    }

    /// Declares package `package_id`'s indexes in `namespace` on `channel`
    /// (once per channel, namespace and package).
    pub fn declare_indexes(
        &self,
        channel: &PeerChannel,
        namespace: &str,
        package_id: &str,
    ) -> Result<(), String> {
        let key = (
            channel.id.clone(),
            namespace.to_owned(),
            package_id.to_owned(),
        );
        if self
            .indexed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let indexes = match self.entries().get(package_id) {
            Some(entry) => entry.indexes.clone(),
            None => return Ok(()),
        };
        for (file, definition) in &indexes {
            channel
                .ledger
                .define_index(namespace, definition)
                .map_err(|e| format!("package {package_id} index {file}: {e}"))?;
            tracing::info!(
                "channel {}: declared index {file} of package {package_id} in namespace {namespace}",
                channel.id
            );
        }
        self.indexed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        Ok(())
    }
}

fn not_installed(package_id: &str) -> String {
    format!("chaincode install package '{package_id}' not found")
}

/// Marks a Node package's build as complete.
const BUILT: &str = ".weft-built";

/// Unpacks a Node package's `src/` and runs `npm install --omit=dev` in it
/// (Fabric's Node builder runs `npm install --production`).
fn build_node(package: &Package, builds: &Path) -> Result<(), String> {
    let target = builds.join(file_stem(&package.id));
    let staging = builds.join(format!("{}.staging", file_stem(&package.id)));
    crate::package::unpack(package.code(), &staging)?;
    let src = staging.join("src");
    if !src.join("node_modules").is_dir() {
        let log = staging.join("npm-install.log");
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = std::process::Command::new("npm")
            .args([
                "install",
                "--omit=dev",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
            ])
            .current_dir(&src)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("building the node package: cannot run npm: {e}"))?;
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > BUILD_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "building the node package: npm install took longer than {} s",
                    BUILD_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            return Err(format!(
                "building the node package: npm install failed ({status}):\n{tail}"
            ));
        }
    }
    node_start(&src)?;
    std::fs::write(src.join(BUILT), b"").map_err(|e| e.to_string())?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    std::fs::rename(&staging, &target).map_err(|e| format!("{}: {e}", target.display()))
}

/// The command that starts a Node chaincode: its `scripts.start`, or
/// `node server.js` as npm does without one.
fn node_start(src: &Path) -> Result<String, String> {
    let path = src.join("package.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("src/package.json: {e}"))?;
    if let Some(start) = manifest["scripts"]["start"].as_str() {
        return Ok(start.to_owned());
    }
    if src.join("server.js").is_file() {
        return Ok("node server.js".into());
    }
    Err("src/package.json has no scripts.start (e.g. \"fabric-chaincode-node start\")".into())
}

/// Writes `bytes` to `path` so that `path` is either absent or complete.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let error = |e: std::io::Error| format!("{}: {e}", path.display());
    let staging = path.with_extension("partial");
    let mut file = std::fs::File::create(&staging).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&staging, path).map_err(error)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(error)?;
    }
    Ok(())
}
