//! Files written the way key material must be: through a rename (a crash
//! leaves the old file or the new one, never a torn one), keys readable by
//! their owner only.

use std::path::Path;

use crate::MaterialError;

/// Writes `contents` to `path` (mode 0644) through a rename, so a crash
/// leaves no truncated file; creates the parent directories.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), MaterialError> {
    write_with_mode(path, contents, 0o644)
}

/// Like [`write`], readable by the owner only (private keys).
pub fn write_private_key(path: &Path, contents: &[u8]) -> Result<(), MaterialError> {
    write_with_mode(path, contents, 0o600)
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), MaterialError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(MaterialError::io(parent))?;
    }
    if std::fs::read(path).is_ok_and(|existing| existing == contents) {
        let permissions = std::fs::Permissions::from_mode(mode);
        return std::fs::set_permissions(path, permissions).map_err(MaterialError::io(path));
    }
    let tmp = path.with_extension("tmp-weft");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(MaterialError::io(&tmp))?;
    file.write_all(contents).map_err(MaterialError::io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(MaterialError::io(path))
}
