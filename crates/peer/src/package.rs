//! Fabric's chaincode install package: a `.tar.gz` holding `metadata.json`
//! (`type`, `label`, `path`) and `code.tar.gz` (the code, or for a
//! chaincode-as-a-service package its `connection.json`). Its package id is
//! `<label>:<hex SHA-256 of the package bytes>`, as Fabric computes it, so
//! a package made by Fabric's `peer lifecycle chaincode package` (or by
//! hand, as test-network does for `-ccaas`) installs here with the same id.

use std::io::Read;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

/// The largest package accepted (compressed), Fabric's gRPC message size.
pub const MAX_PACKAGE: usize = crate::MAX_GRPC_MESSAGE;
/// The most a package's code may expand to: a small package that inflates
/// to gigabytes is refused rather than filling the peer's disk.
const MAX_EXPANDED: u64 = 512 << 20;

/// `metadata.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
}

/// A parsed install package.
#[derive(Debug, Clone)]
pub struct Package {
    pub id: String,
    pub metadata: Metadata,
    /// The files of `code.tar.gz` (decoded once, at parse).
    code: Vec<(String, Vec<u8>)>,
}

/// `connection.json` of a chaincode-as-a-service package (Fabric's `ccaas`
/// builder's fields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Connection {
    pub address: String,
    pub dial_timeout: String,
    pub tls_required: bool,
    pub client_auth_required: bool,
    /// PEM of the CA of the chaincode server's TLS certificate.
    pub root_cert: String,
    pub client_cert: String,
    pub client_key: String,
}

/// How a package runs on a weft peer.
#[derive(Debug, Clone)]
pub enum Runtime {
    /// `ccaas` or `external`: the peer dials the chaincode's server.
    Service(Connection),
    /// `node`: the peer unpacks `src/`, installs its npm dependencies and
    /// starts it with `npm start` (Fabric's Node chaincode builder).
    Node,
}

/// Fabric's rule for labels.
pub fn check_label(label: &str) -> Result<(), String> {
    let mut chars = label.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid label '{label}'. Label must be non-empty, can only consist of alphanumerics, \
             symbols from '.+-_', and can only begin with alphanumerics"
        ))
    }
}

/// `<label>:<hex SHA-256 of the package>`.
pub fn package_id(label: &str, package: &[u8]) -> String {
    format!("{label}:{}", hex(&weft_crypto::sha256(package)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entries of a gzipped tar, as (path, bytes); only regular files (and
/// directories, which are skipped) are accepted, and paths must stay inside
/// the archive.
pub fn entries(gzipped: &[u8], what: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let decoder = flate2::read::GzDecoder::new(gzipped).take(MAX_EXPANDED + 1);
    let mut archive = tar::Archive::new(decoder);
    let mut out = Vec::new();
    let mut total = 0u64;
    let list = archive
        .entries()
        .map_err(|e| format!("{what} is not a gzipped tar archive: {e}"))?;
    for entry in list {
        let mut entry = entry.map_err(|e| format!("{what} is not a gzipped tar archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("{what}: an entry's path: {e}"))?
            .into_owned();
        let name = path.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(format!(
                "{what}: entry {name:?} is not a regular file or directory"
            ));
        }
        if !stays_inside(&path) {
            return Err(format!("{what}: entry {name:?} leaves the archive"));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{what}: reading {name:?}: {e}"))?;
        total += bytes.len() as u64;
        if total > MAX_EXPANDED {
            return Err(format!(
                "{what} expands to more than {} MiB",
                MAX_EXPANDED >> 20
            ));
        }
        out.push((name.trim_start_matches("./").to_owned(), bytes));
    }
    Ok(out)
}

fn stays_inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl Package {
    /// Parses install package bytes, with Fabric's messages for what is
    /// missing.
    pub fn parse(bytes: &[u8]) -> Result<Package, String> {
        if bytes.len() > MAX_PACKAGE {
            return Err(format!(
                "the chaincode install package is larger than {} MiB",
                MAX_PACKAGE >> 20
            ));
        }
        let mut metadata = None;
        let mut code = None;
        for (name, data) in entries(bytes, "the chaincode install package")? {
            match name.as_str() {
                "metadata.json" => {
                    let parsed: Metadata = serde_json::from_slice(&data)
                        .map_err(|e| format!("could not unmarshal metadata.json as json: {e}"))?;
                    metadata = Some(parsed);
                }
                "code.tar.gz" => code = Some(data),
                _ => {}
            }
        }
        let metadata = metadata
            .ok_or("did not find any package metadata (missing metadata.json)".to_owned())?;
        check_label(&metadata.label)?;
        Ok(Package {
            id: package_id(&metadata.label, bytes),
            metadata,
            code: match code {
                Some(code) if !code.is_empty() => entries(&code, "code.tar.gz")?,
                _ => Vec::new(),
            },
        })
    }

    /// The files of `code.tar.gz`.
    pub fn code(&self) -> &[(String, Vec<u8>)] {
        &self.code
    }

    /// How a weft peer runs this package, or why it cannot.
    pub fn runtime(&self) -> Result<Runtime, String> {
        match self.metadata.kind.to_ascii_lowercase().as_str() {
            "ccaas" | "external" => {
                let (_, json) = self
                    .code
                    .iter()
                    .find(|(name, _)| name == "connection.json")
                    .ok_or_else(|| {
                        format!(
                            "package type {} needs a connection.json in code.tar.gz",
                            self.metadata.kind
                        )
                    })?;
                let connection: Connection =
                    serde_json::from_slice(json).map_err(|e| format!("connection.json: {e}"))?;
                if connection.address.is_empty() {
                    return Err("connection.json: no address".into());
                }
                if connection.tls_required && connection.root_cert.is_empty() {
                    return Err("connection.json: tls_required needs root_cert".into());
                }
                if connection.client_auth_required
                    && (connection.client_cert.is_empty() || connection.client_key.is_empty())
                {
                    return Err(
                        "connection.json: client_auth_required needs client_cert and client_key"
                            .into(),
                    );
                }
                Ok(Runtime::Service(connection))
            }
            "node" => {
                if !self.code.iter().any(|(name, _)| name == "src/package.json") {
                    return Err("a node package needs src/package.json in code.tar.gz".into());
                }
                Ok(Runtime::Node)
            }
            other => Err(format!(
                "weft peers run packages of type ccaas, external and node; this one is {other:?}. \
                 Run the chaincode as a service and package its connection.json as type ccaas"
            )),
        }
    }

    /// The JSON index definitions the package carries for its chaincode's
    /// namespace (`META-INF/statedb/couchdb/indexes/*.json`), as
    /// (file name, definition).
    pub fn indexes(&self) -> Result<Vec<(String, String)>, String> {
        let mut indexes = Vec::new();
        for (name, bytes) in &self.code {
            let Some(file) = index_file(name) else {
                continue;
            };
            let text = String::from_utf8(bytes.clone())
                .map_err(|_| format!("index {name}: not UTF-8 text"))?;
            indexes.push((file.to_owned(), text));
        }
        Ok(indexes)
    }
}

/// The file name of a public-data index in a package's code, if `path` is
/// one (`META-INF/…` at the top, or under `src/` as Node packages put it).
fn index_file(path: &str) -> Option<&str> {
    let path = path.strip_prefix("src/").unwrap_or(path);
    let file = path.strip_prefix("META-INF/statedb/couchdb/indexes/")?;
    (!file.contains('/') && file.ends_with(".json")).then_some(file)
}

/// Builds an install package from `dir`, as `peer lifecycle chaincode
/// package` does: `node` puts the directory under `src/` (without
/// `node_modules`) and its `META-INF` at the top; `ccaas`/`external` take
/// `connection.json` and `META-INF` from the directory.
pub fn build(kind: &str, label: &str, dir: &Path) -> Result<Vec<u8>, String> {
    check_label(label)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    match kind {
        "node" => {
            if !dir.join("package.json").is_file() {
                return Err(format!(
                    "{}: no package.json (a node chaincode's directory)",
                    dir.display()
                ));
            }
            collect(dir, dir, &mut files, &|relative| {
                !relative.starts_with("node_modules") && !relative.starts_with("META-INF")
            })?;
            for (name, _) in &mut files {
                *name = format!("src/{name}");
            }
        }
        "ccaas" | "external" => {
            let connection = dir.join("connection.json");
            let bytes =
                std::fs::read(&connection).map_err(|e| format!("{}: {e}", connection.display()))?;
            serde_json::from_slice::<Connection>(&bytes)
                .map_err(|e| format!("{}: {e}", connection.display()))?;
            files.push(("connection.json".into(), bytes));
        }
        "golang" | "java" => {
            return Err(format!(
                "weft peers do not build {kind} chaincode; run it as a service and package its \
                 connection.json with --lang ccaas"
            ));
        }
        other => {
            return Err(format!(
                "unknown chaincode language {other:?} (node, ccaas or external)"
            ));
        }
    }
    let meta_inf = dir.join("META-INF");
    if meta_inf.is_dir() {
        collect(dir, &meta_inf, &mut files, &|_| true)?;
    }
    let code = tar_gz(&files)?;
    let metadata = serde_json::to_vec(&Metadata {
        path: dir.display().to_string(),
        kind: kind.to_owned(),
        label: label.to_owned(),
    })
    .map_err(|e| e.to_string())?;
    tar_gz(&[
        ("metadata.json".to_owned(), metadata),
        ("code.tar.gz".to_owned(), code),
    ])
}

/// Regular files under `dir`, named relative to `root`, in a stable order.
fn collect(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(String, Vec<u8>)>,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<(), String> {
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        if !keep(relative) {
            continue;
        }
        let kind = child
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_dir() {
            collect(root, &path, files, keep)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((relative.to_string_lossy().into_owned(), bytes));
        }
    }
    Ok(())
}

/// A gzipped tar of `files` with fixed modes and times, so the same files
/// give the same package (and package id).
fn tar_gz(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(|e| format!("packaging {name}: {e}"))?;
    }
    builder
        .into_inner()
        .and_then(|encoder| encoder.finish())
        .map_err(|e| format!("packaging: {e}"))
}

/// Unpacks the files of `package`'s code into `dir` (replaced if present).
pub fn unpack(files: &[(String, Vec<u8>)], dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ccaas_dir(connection: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("connection.json"), connection).expect("write");
        dir
    }

    #[test]
    fn a_built_package_parses_back_with_fabrics_package_id() {
        let dir =
            ccaas_dir(r#"{"address":"127.0.0.1:9999","dial_timeout":"10s","tls_required":false}"#);
        std::fs::create_dir_all(dir.path().join("META-INF/statedb/couchdb/indexes")).expect("dir");
        std::fs::write(
            dir.path()
                .join("META-INF/statedb/couchdb/indexes/owner.json"),
            r#"{"index":{"fields":["owner"]},"name":"owner"}"#,
        )
        .expect("write");
        let bytes = build("ccaas", "basic_1.0", dir.path()).expect("package");
        // The same files give the same bytes, so the same id.
        assert_eq!(
            bytes,
            build("ccaas", "basic_1.0", dir.path()).expect("package")
        );
        let package = Package::parse(&bytes).expect("parse");
        assert_eq!(package.metadata.label, "basic_1.0");
        assert_eq!(package.metadata.kind, "ccaas");
        assert_eq!(
            package.id,
            format!("basic_1.0:{}", hex(&weft_crypto::sha256(&bytes)))
        );
        let Runtime::Service(connection) = package.runtime().expect("runtime") else {
            panic!("a ccaas package is a service");
        };
        assert_eq!(connection.address, "127.0.0.1:9999");
        assert_eq!(
            package.indexes().expect("indexes"),
            vec![(
                "owner.json".to_owned(),
                r#"{"index":{"fields":["owner"]},"name":"owner"}"#.to_owned()
            )]
        );
    }

    #[test]
    fn node_packages_put_the_code_under_src_without_node_modules() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("package.json"), "{}").expect("write");
        std::fs::write(dir.path().join("index.js"), "").expect("write");
        std::fs::create_dir_all(dir.path().join("node_modules/x")).expect("dir");
        std::fs::write(dir.path().join("node_modules/x/y.js"), "").expect("write");
        let package =
            Package::parse(&build("node", "n", dir.path()).expect("package")).expect("parse");
        let names: Vec<&str> = package.code().iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["src/index.js", "src/package.json"]);
        assert!(matches!(package.runtime(), Ok(Runtime::Node)));
    }

    #[test]
    fn bad_packages_and_labels_are_refused_with_fabrics_messages() {
        assert!(check_label("basic_1.0+x-y").is_ok());
        for bad in ["", "_x", "a b", "a:b"] {
            assert!(
                check_label(bad).unwrap_err().contains("invalid label"),
                "{bad:?}"
            );
        }
        assert!(
            Package::parse(b"not gzip")
                .unwrap_err()
                .contains("not a gzipped tar archive")
        );
        let no_metadata = tar_gz(&[("code.tar.gz".into(), vec![])]).expect("tar");
        assert_eq!(
            Package::parse(&no_metadata).unwrap_err(),
            "did not find any package metadata (missing metadata.json)"
        );
        let golang = tar_gz(&[(
            "metadata.json".into(),
            br#"{"type":"golang","label":"go_1","path":"x"}"#.to_vec(),
        )])
        .expect("tar");
        let error = Package::parse(&golang)
            .expect("parse")
            .runtime()
            .unwrap_err();
        assert!(error.contains("\"golang\""), "{error}");
        let no_connection = tar_gz(&[(
            "metadata.json".into(),
            br#"{"type":"ccaas","label":"c"}"#.to_vec(),
        )])
        .expect("tar");
        assert!(
            Package::parse(&no_connection)
                .expect("parse")
                .runtime()
                .unwrap_err()
                .contains("connection.json")
        );
        // A crafted entry named `../x` (the tar writer refuses to make one).
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..4].copy_from_slice(b"../x");
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut raw = header.as_bytes().to_vec();
        raw.extend_from_slice(&[0; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).expect("gzip");
        let escaping = gz.finish().expect("gzip");
        let refused = entries(&escaping, "p").expect_err("leaves the archive");
        assert!(refused.contains("leaves the archive"), "{refused}");
        assert!(
            build("golang", "go_1", Path::new("."))
                .unwrap_err()
                .contains("--lang ccaas")
        );
    }
}
