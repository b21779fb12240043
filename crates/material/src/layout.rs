//! Paths of Fabric's test-network layout, in one place.

use std::path::{Path, PathBuf};

/// Fabric's name for the file of a certificate in `cacerts/` and `ca/`.
pub fn ca_cert_file(ca_name: &str) -> String {
    format!("{ca_name}-cert.pem")
}

/// `organizations/peerOrganizations/<domain>`.
pub fn peer_org_dir(root: &Path, domain: &str) -> PathBuf {
    root.join("peerOrganizations").join(domain)
}

/// `organizations/ordererOrganizations/<domain>`.
pub fn orderer_org_dir(root: &Path, domain: &str) -> PathBuf {
    root.join("ordererOrganizations").join(domain)
}

/// An organisation's TLS CA certificate: `<org_dir>/tlsca/tlsca.<domain>-cert.pem`
/// (what applications and nodes trust for that organisation's TLS).
pub fn tls_ca_cert(org_dir: &Path, domain: &str) -> PathBuf {
    org_dir
        .join("tlsca")
        .join(ca_cert_file(&format!("tlsca.{domain}")))
}

/// `…/peers/peer0.org1.example.com`.
pub fn peer_dir(root: &Path, domain: &str, index: u32) -> PathBuf {
    peer_org_dir(root, domain)
        .join("peers")
        .join(format!("peer{index}.{domain}"))
}

/// Host names of the Raft nodes: `orderer`, `orderer2`, `orderer3`, …
pub fn orderer_host(index: u32) -> String {
    weft_spec::orderer_host(index)
}

/// `…/orderers/orderer.example.com`.
pub fn orderer_dir(root: &Path, domain: &str, index: u32) -> PathBuf {
    orderer_org_dir(root, domain)
        .join("orderers")
        .join(format!("{}.{domain}", orderer_host(index)))
}

/// `…/users/User1@org1.example.com` (or `Admin@…`).
pub fn user_dir(org_dir: &Path, user: &str, domain: &str) -> PathBuf {
    org_dir.join("users").join(format!("{user}@{domain}"))
}

/// The signing certificate file inside an MSP directory.
pub const SIGNCERT_FILE: &str = "signcerts/cert.pem";
/// The private key file inside an MSP directory (Fabric 2.x cryptogen's name).
pub const KEY_FILE: &str = "keystore/priv_sk";
