//! A network brought up with `weft up` from a spec, in a directory of its
//! own, stopped (`weft down`) when the test ends.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::WEFT;

pub struct UpNetwork {
    pub dir: tempfile::TempDir,
}

impl UpNetwork {
    /// `weft up` with `spec` (YAML), written beside the network directory
    /// with `files` (name, contents) it refers to; panics if it fails.
    pub fn up(spec: &str, files: &[(&str, &str)]) -> Self {
        let network = UpNetwork {
            dir: tempfile::tempdir().expect("dir"),
        };
        for (name, contents) in files {
            std::fs::write(network.dir.path().join(name), contents).expect("file");
        }
        let path = network.dir.path().join("spec.yaml");
        std::fs::write(&path, spec).expect("spec");
        let out = network.weft(&["up", path.to_str().expect("utf8")]);
        assert!(
            out.status.success(),
            "weft up: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        network
    }

    /// The network directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    /// `weft <args> --dir <network>`.
    pub fn weft(&self, args: &[&str]) -> Output {
        Command::new(WEFT)
            .args(args)
            .arg("--dir")
            .arg(self.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("weft")
    }

    /// `weft <args> --dir <network>`'s standard output; panics if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.weft(args);
        assert!(
            out.status.success(),
            "weft {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `organizations/peerOrganizations/<domain>`.
    pub fn org(&self, domain: &str) -> PathBuf {
        self.path()
            .join("organizations/peerOrganizations")
            .join(domain)
    }
}

impl Drop for UpNetwork {
    fn drop(&mut self) {
        let _ = self.weft(&["down"]);
    }
}
