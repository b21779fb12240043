//! The network directory: where `weft up` keeps everything of one network.
//!
//! ```text
//! <dir>/network.yaml                  the spec the network was created from
//! <dir>/organizations/                crypto material and connection profiles (Fabric's test-network layout)
//! <dir>/channel-artifacts/<ch>.block  genesis blocks
//! <dir>/nodes/<node>/config.yaml      each node's config, data/ and node.log
//! <dir>/supervisor.pid, supervisor.log
//! ```

use std::path::{Path, PathBuf};

use weft_spec::NetworkSpec;

use crate::NetworkError;
use crate::nodes::{Node, Reach, nodes_at};

/// The first line of a stored spec names the directory its relative paths
/// (index files, chaincode directories) are relative to.
const BASE_PREFIX: &str = "# weft: paths relative to ";

#[derive(Debug, Clone)]
pub struct NetworkDir {
    root: PathBuf,
    reach: Reach,
}

impl NetworkDir {
    /// The directory `root` (made absolute: pid checks match on paths), of
    /// a network on this machine.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        NetworkDir {
            root: absolute(&root.into()),
            reach: Reach::Local,
        }
    }

    /// The same directory, its nodes reached as from `reach`.
    pub fn reached_from(self, reach: Reach) -> Self {
        NetworkDir { reach, ..self }
    }

    pub fn reach(&self) -> Reach {
        self.reach
    }

    /// The spec's nodes at the addresses they are reached at from here.
    pub fn nodes(&self, spec: &NetworkSpec) -> Vec<Node> {
        nodes_at(spec, self.reach)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn exists(&self) -> bool {
        self.spec_file().is_file()
    }

    pub fn spec_file(&self) -> PathBuf {
        self.root.join("network.yaml")
    }

    pub fn organizations(&self) -> PathBuf {
        self.root.join("organizations")
    }

    pub fn block(&self, channel: &str) -> PathBuf {
        self.root
            .join("channel-artifacts")
            .join(format!("{channel}.block"))
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }

    pub fn node_config(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("config.yaml")
    }

    pub fn node_log(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("node.log")
    }

    pub fn node_pid(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("pid")
    }

    pub fn supervisor_pid(&self) -> PathBuf {
        self.root.join("supervisor.pid")
    }

    /// An event sink's directory (`sinks/<name>`: its `pid` and `sink.log`).
    pub fn sink_dir(&self, sink: &str) -> PathBuf {
        self.root.join("sinks").join(sink)
    }

    pub fn sink_log(&self, sink: &str) -> PathBuf {
        self.sink_dir(sink).join("sink.log")
    }

    pub fn sink_pid(&self, sink: &str) -> PathBuf {
        self.sink_dir(sink).join("pid")
    }

    pub fn supervisor_log(&self) -> PathBuf {
        self.root.join("supervisor.log")
    }

    /// The stored spec and the directory its relative paths are relative to.
    pub fn load_spec(&self) -> Result<(NetworkSpec, PathBuf), NetworkError> {
        let path = self.spec_file();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NetworkError::NoNetwork(self.root.clone())
            } else {
                NetworkError::io(&path, e)
            }
        })?;
        let spec = NetworkSpec::from_yaml(&text, &path.display().to_string())?;
        let base = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix(BASE_PREFIX))
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.clone());
        Ok((spec, base))
    }

    /// Stores the spec text with the directory its paths are relative to.
    pub fn store_spec(&self, text: &str, base: &Path) -> Result<(), NetworkError> {
        let body = match text.strip_prefix(BASE_PREFIX) {
            // Re-storing a stored spec: drop its old base line.
            Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body),
            None => text,
        };
        write_atomic(
            &self.spec_file(),
            format!("{BASE_PREFIX}{}\n{body}", base.display()).as_bytes(),
        )
    }
}

/// Writes via a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| NetworkError::io(parent, e))?;
    }
    let staging = path.with_extension("partial");
    std::fs::write(&staging, bytes).map_err(|e| NetworkError::io(&staging, e))?;
    std::fs::rename(&staging, path).map_err(|e| NetworkError::io(path, e))
}

/// `path` made absolute against the current directory.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}
