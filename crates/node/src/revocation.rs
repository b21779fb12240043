//! Revocation lists in a node's local MSP (`<msp_dir>/crls/*.pem`,
//! Fabric's layout), enforced on every channel besides those of the channel
//! configuration: a list counts on a channel when one of the channel's CAs
//! signed it, so a certificate a Fabric CA (or `weft ca`) revoked is
//! refused by the peers and orderers whose MSP holds the CRL. The directory
//! is read again every [`POLL`], so a CRL copied there takes effect without
//! a restart (identities validated before are validated again).
//!
//! Until channel configuration updates exist, this is how revocation
//! reaches a running network; the lists are not part of the channel's
//! configuration, so only the nodes holding them refuse the identity.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_msp::MspManager;

/// How often the directory is read again.
pub const POLL: Duration = Duration::from_secs(2);

/// The lists (PEM files) of a local MSP's `crls/`, as last read.
type Lists = Arc<Vec<Vec<u8>>>;

/// The lists of a local MSP's `crls/`, and a fingerprint of the files they
/// were read from.
pub struct LocalCrls {
    dir: PathBuf,
    state: Mutex<([u8; 32], Lists)>,
}

impl LocalCrls {
    pub fn new(msp_dir: &std::path::Path) -> Self {
        Self {
            dir: msp_dir.join("crls"),
            state: Mutex::new(([0; 32], Arc::new(Vec::new()))),
        }
    }

    /// Reads the directory; the lists if they changed since the last read.
    pub fn reload(&self) -> Option<Lists> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.is_file())
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        let mut fingerprint = weft_crypto::Sha256::new();
        let mut lists = Vec::new();
        for file in files {
            match std::fs::read(&file) {
                Ok(bytes) => {
                    fingerprint.update(file.as_os_str().as_encoded_bytes());
                    fingerprint.update(&bytes);
                    lists.push(bytes);
                }
                Err(e) => tracing::warn!("{}: {e}", file.display()),
            }
        }
        let fingerprint = fingerprint.finish();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == fingerprint {
            return None;
        }
        *state = (fingerprint, Arc::new(lists));
        Some(Arc::clone(&state.1))
    }

    pub fn current(&self) -> Lists {
        Arc::clone(&self.state.lock().unwrap_or_else(|p| p.into_inner()).1)
    }

    /// Enforces the current lists on channel `channel`'s MSPs.
    pub fn apply(&self, channel: &str, msps: &MspManager) {
        let lists = self.current();
        let outcome = msps.set_local_revocation_lists(&lists);
        if outcome.applied > 0 {
            tracing::info!(
                "channel {channel}: {} revocation list(s) from {} enforced ({} revoked serials)",
                outcome.applied,
                self.dir.display(),
                outcome.serials
            );
        }
        for skipped in &outcome.skipped {
            tracing::debug!("channel {channel}: {}: {skipped}", self.dir.display());
        }
    }
}
