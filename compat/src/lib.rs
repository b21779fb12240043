//! Helpers for weft's interop tests (in `tests/`), which run the official
//! Hyperledger Fabric packages from npm and PyPI against weft.
//!
//! The packages are installed, at pinned versions, by `compat/install.sh`
//! (the README's test command runs it first). A test whose packages are
//! missing fails with a message naming that script; it never skips silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};

/// The `compat/` directory.
pub fn compat_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: PathBuf, what: &str) -> anyhow::Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        bail!(
            "{what} is not installed ({} is missing): run compat/install.sh first",
            path.display()
        )
    }
}

/// The Python interpreter of the venv holding Fabric's PyPI packages.
pub fn python() -> anyhow::Result<PathBuf> {
    require(
        compat_dir().join(".venv/bin/python"),
        "the Python venv with hyperledger-fabric-protos",
    )
}

/// Checks that `@hyperledger/fabric-gateway` is installed and returns `compat/`,
/// the directory Node scripts must run from.
pub fn node_packages() -> anyhow::Result<PathBuf> {
    require(
        compat_dir().join("node_modules/@hyperledger/fabric-gateway/package.json"),
        "@hyperledger/fabric-gateway",
    )?;
    Ok(compat_dir().to_path_buf())
}

/// Runs a command to completion and returns its output, with a readable error
/// (command line, exit status, stderr) if it could not start.
pub fn run(command: &mut Command) -> anyhow::Result<Output> {
    let line = format!("{command:?}");
    command.output().with_context(|| format!("starting {line}"))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string; fails on odd length or a non-hex digit.
pub fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        bail!("hex string has odd length {}", text.len());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).with_context(|| format!("bad hex at {i}")))
        .collect()
}

/// The string value of `"key":"value"` in a one-line JSON object printed by a
/// compat script (values there never contain quotes).
pub fn json_string(json: &str, key: &str) -> anyhow::Result<String> {
    let marker = format!("\"{key}\":\"");
    let start = json
        .find(&marker)
        .with_context(|| format!("no {key} in {json}"))?
        + marker.len();
    let len = json[start..]
        .find('"')
        .with_context(|| format!("unterminated {key} in {json}"))?;
    Ok(json[start..start + len].to_owned())
}
