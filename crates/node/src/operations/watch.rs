//! What the operations service reports about a node's surroundings: the
//! disk its data directory lives on, and when its certificates expire.
//! weft's own metrics (Fabric has none of these), named in Fabric's style.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::metrics::{Collector, Registry, write_family};

/// Bytes the files under `dir` occupy on disk (allocated blocks).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            total += metadata.blocks() * 512;
        }
    }
    total
}

/// At each scrape: `weft_data_dir_bytes` (what the node's files occupy)
/// and the free and total bytes of the filesystem holding them
/// (`weft_data_dir_filesystem_avail_bytes`, `…_size_bytes`).
pub fn data_dir_collector(dir: PathBuf) -> Collector {
    Box::new(move |out: &mut String| {
        let mut gauge = |name: &str, help: &str, value: u64| {
            write_family(out, name, help, "gauge", [(&[][..], value as f64)]);
        };
        gauge(
            "weft_data_dir_bytes",
            "Bytes the node's data directory occupies on disk.",
            disk_usage(&dir),
        );
        if let Ok(fs) = rustix::fs::statvfs(&dir) {
            gauge(
                "weft_data_dir_filesystem_avail_bytes",
                "Bytes available to the node on the filesystem of its data directory.",
                fs.f_bavail.saturating_mul(fs.f_frsize),
            );
            gauge(
                "weft_data_dir_filesystem_size_bytes",
                "Size in bytes of the filesystem of the node's data directory.",
                fs.f_blocks.saturating_mul(fs.f_frsize),
            );
        }
    })
}

/// The first certificate of a PEM file: (subject, notAfter as Unix seconds).
pub fn certificate_expiry(path: &Path) -> Result<(String, i64), String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let der = weft_crypto::pem::certificates(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no certificate", path.display()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((
        cert.subject().to_string(),
        cert.validity().not_after.timestamp(),
    ))
}

/// The certificate in an MSP directory's `signcerts/` (the node's
/// enrolment certificate).
pub fn signcert(msp_dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(msp_dir.join("signcerts"))
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files.into_iter().next()
}

/// `weft_certificate_expiry_timestamp_seconds{certificate, subject}`: when
/// each of the node's certificates (`enrollment`, `tls`) stops being valid.
pub fn register_certificates(
    registry: &Registry,
    certificates: &[(&str, PathBuf)],
) -> Result<(), String> {
    let expiry = registry.gauge(
        "weft_certificate_expiry_timestamp_seconds",
        "When the node's certificate stops being valid, in seconds since the Unix epoch.",
        &["certificate", "subject"],
    );
    for (kind, path) in certificates {
        let (subject, not_after) = certificate_expiry(path)?;
        expiry.with(&[kind, &subject]).set(not_after as f64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_use_and_its_filesystem_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("chains")).expect("mkdir");
        std::fs::write(
            dir.path().join("chains/blockfile_000000"),
            vec![7u8; 100_000],
        )
        .expect("write");
        let registry = Registry::default();
        registry.collect(data_dir_collector(dir.path().to_path_buf()));
        let text = registry.encode();
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name}\n{text}"))
        };
        assert!(value("weft_data_dir_bytes") >= 100_000, "{text}");
        let size = value("weft_data_dir_filesystem_size_bytes");
        let avail = value("weft_data_dir_filesystem_avail_bytes");
        assert!(avail > 0 && avail < size, "{text}");
    }

    #[test]
    fn certificate_expiry_is_the_not_after_of_the_pem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = weft_material::issuer::EphemeralCa::new("ca.example.com", 30).expect("ca");
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, ca.cert_pem()).expect("write");
        let registry = Registry::default();
        register_certificates(&registry, &[("tls", path.clone())]).expect("register");
        let text = registry.encode();
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("weft_certificate_expiry_timestamp_seconds{certificate=\"tls\"")
            })
            .unwrap_or_else(|| panic!("{text}"));
        let not_after: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("value");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs_f64();
        let days = (not_after - now) / 86_400.0;
        assert!((29.0..=30.5).contains(&days), "{days} days: {line}");
        assert!(
            register_certificates(&registry, &[("tls", dir.path().join("missing.pem"))])
                .expect_err("missing")
                .contains("missing.pem")
        );
    }
}
