//! API keys: `weft.<id>.<secret>`, shown once when created; the file keeps
//! the SHA-256 of the secret (a random 192-bit secret needs no slow hash),
//! the identity it acts as (`Org1/User1`), and whether it was revoked. The
//! server reads the file again when its modification time changes, and at
//! least every second, so a key created or revoked takes effect within a
//! second, without a restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// One key's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    /// The identity it acts as (`Org1/User1`).
    pub identity: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// RFC 3339.
    pub created: String,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyRecord>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<KeyFile, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a key file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write(path: &Path, file: &KeyFile) -> Result<(), String> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let temporary = path.with_extension("json.tmp");
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    let text = serde_json::to_vec_pretty(file).map_err(|e| e.to_string())?;
    let mut out = open
        .open(&temporary)
        .map_err(|e| format!("{}: {e}", temporary.display()))?;
    out.write_all(&text)
        .and_then(|()| out.sync_all())
        .map_err(|e| format!("{}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Creates a key acting as `identity`; returns (id, the key to hand out).
pub fn create(path: &Path, identity: &str) -> Result<(String, String), String> {
    let mut file = read(path)?;
    let id = hex(&weft_crypto::random_bytes::<4>());
    let secret = weft_crypto::pem::base64(&weft_crypto::random_bytes::<24>())
        .replace('+', "-")
        .replace('/', "_");
    file.keys.push(KeyRecord {
        id: id.clone(),
        identity: identity.to_owned(),
        hash: hex(&weft_crypto::sha256(secret.as_bytes())),
        created: now(),
        revoked: false,
    });
    write(path, &file)?;
    Ok((id.clone(), format!("weft.{id}.{secret}")))
}

/// Revokes key `id`; false if there is none.
pub fn revoke(path: &Path, id: &str) -> Result<bool, String> {
    let mut file = read(path)?;
    let Some(key) = file.keys.iter_mut().find(|k| k.id == id) else {
        return Ok(false);
    };
    key.revoked = true;
    write(path, &file)?;
    Ok(true)
}

pub fn list(path: &Path) -> Result<Vec<KeyRecord>, String> {
    Ok(read(path)?.keys)
}

/// The keys as the server checks them, read again when the file changes.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    state: Mutex<Cached>,
}

#[derive(Debug)]
struct Cached {
    modified: Option<SystemTime>,
    read_at: Instant,
    keys: Vec<KeyRecord>,
}

impl KeyStore {
    pub fn open(path: &Path) -> Result<Self, String> {
        let store = KeyStore {
            path: path.to_path_buf(),
            state: Mutex::new(Cached {
                modified: None,
                read_at: Instant::now(),
                keys: read(path)?.keys,
            }),
        };
        Ok(store)
    }

    fn refresh(&self) -> Result<(), String> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.modified != modified || state.read_at.elapsed() >= Duration::from_secs(1) {
            state.keys = read(&self.path)?.keys;
            state.modified = modified;
            state.read_at = Instant::now();
        }
        Ok(())
    }

    /// The identity `key` acts as; None for a missing, wrong or revoked key.
    pub fn identity(&self, key: &str) -> Option<(String, String)> {
        if let Err(e) = self.refresh() {
            tracing::warn!("API keys: {e}");
        }
        let mut parts = key.split('.');
        let (Some("weft"), Some(id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let hash = hex(&weft_crypto::sha256(secret.as_bytes()));
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let record = state.keys.iter().find(|k| k.id == id)?;
        let equal = record.hash.len() == hash.len()
            && record
                .hash
                .bytes()
                .zip(hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        (equal && !record.revoked).then(|| (record.id.clone(), record.identity.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stored_hashed_checked_and_revocable() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys.json");
        let store = KeyStore::open(&path).expect("empty store");
        let (id, key) = create(&path, "Org1/User1").expect("create");
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(!text.contains(key.rsplit('.').next().expect("secret")));
        assert_eq!(
            store.identity(&key),
            Some((id.clone(), "Org1/User1".to_owned()))
        );
        assert_eq!(store.identity(&format!("{key}x")), None);
        assert_eq!(store.identity("weft.nothing.here"), None);
        assert_eq!(store.identity("Bearer"), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(revoke(&path, &id).expect("revoke"));
        assert!(!revoke(&path, "00000000").expect("no such key"));
        // The modification time may not move within one tick on every file
        // system: a fresh store sees the revocation in any case.
        assert_eq!(KeyStore::open(&path).expect("store").identity(&key), None);
        assert!(list(&path).expect("list")[0].revoked);
    }
}
