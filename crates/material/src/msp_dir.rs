//! Reading MSP directories (`msp/` with `cacerts/`, `signcerts/`, `keystore/`,
//! `config.yaml`) as Fabric's peers, orderers and SDKs do.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use weft_crypto::{SignError, Signer, SigningKey};
use weft_protos::Message;
use weft_protos::msp::{FabricMspConfig, FabricNodeOUs, FabricOuIdentifier, SerializedIdentity};

use crate::MaterialError;

/// Every regular file of `dir`, sorted by name; empty if `dir` does not exist.
fn files(dir: &Path) -> Result<Vec<PathBuf>, MaterialError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MaterialError::io(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(MaterialError::io(dir))?.path();
        if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, MaterialError> {
    std::fs::read(path).map_err(MaterialError::io(path))
}

fn read_all(dir: &Path) -> Result<Vec<Vec<u8>>, MaterialError> {
    files(dir)?.iter().map(|f| read(f)).collect()
}

#[derive(Deserialize)]
struct MspDirConfig {
    #[serde(rename = "NodeOUs")]
    node_ous: Option<NodeOusYaml>,
}

#[derive(Deserialize)]
struct NodeOusYaml {
    #[serde(rename = "Enable", default)]
    enable: bool,
    #[serde(rename = "ClientOUIdentifier")]
    client: Option<OuYaml>,
    #[serde(rename = "PeerOUIdentifier")]
    peer: Option<OuYaml>,
    #[serde(rename = "AdminOUIdentifier")]
    admin: Option<OuYaml>,
    #[serde(rename = "OrdererOUIdentifier")]
    orderer: Option<OuYaml>,
}

#[derive(Deserialize)]
struct OuYaml {
    #[serde(rename = "Certificate", default)]
    certificate: String,
    #[serde(rename = "OrganizationalUnitIdentifier")]
    organizational_unit_identifier: String,
}

/// Reads an MSP directory into the definition channel configuration carries:
/// `cacerts/`, `intermediatecerts/`, `admincerts/`, `crls/`, `tlscacerts/`,
/// `tlsintermediatecerts/` and the NodeOUs of `config.yaml`.
pub fn load_msp_config(msp_dir: &Path, msp_id: &str) -> Result<FabricMspConfig, MaterialError> {
    let root_certs = read_all(&msp_dir.join("cacerts"))?;
    if root_certs.is_empty() {
        return Err(MaterialError::invalid(
            msp_dir.join("cacerts"),
            "no CA certificate: an MSP needs at least one",
        ));
    }
    let config_path = msp_dir.join("config.yaml");
    let node_ous = if config_path.exists() {
        let text =
            std::fs::read_to_string(&config_path).map_err(MaterialError::io(&config_path))?;
        let config: MspDirConfig = serde_saphyr::from_str(&text)
            .map_err(|e| MaterialError::invalid(&config_path, e.to_string().trim().to_owned()))?;
        match config.node_ous {
            Some(n) => {
                let ou = |ou: Option<OuYaml>| -> Result<Option<FabricOuIdentifier>, MaterialError> {
                    let Some(ou) = ou else { return Ok(None) };
                    let certificate = if ou.certificate.is_empty() {
                        Vec::new()
                    } else {
                        read(&msp_dir.join(&ou.certificate))?
                    };
                    Ok(Some(FabricOuIdentifier {
                        certificate,
                        organizational_unit_identifier: ou.organizational_unit_identifier,
                    }))
                };
                Some(FabricNodeOUs {
                    enable: n.enable,
                    client_ou_identifier: ou(n.client)?,
                    peer_ou_identifier: ou(n.peer)?,
                    admin_ou_identifier: ou(n.admin)?,
                    orderer_ou_identifier: ou(n.orderer)?,
                })
            }
            None => None,
        }
    } else {
        None
    };
    Ok(FabricMspConfig {
        name: msp_id.to_owned(),
        root_certs,
        intermediate_certs: read_all(&msp_dir.join("intermediatecerts"))?,
        admins: read_all(&msp_dir.join("admincerts"))?,
        revocation_list: read_all(&msp_dir.join("crls"))?,
        tls_root_certs: read_all(&msp_dir.join("tlscacerts"))?,
        tls_intermediate_certs: read_all(&msp_dir.join("tlsintermediatecerts"))?,
        fabric_node_ous: node_ous,
        ..Default::default()
    })
}

/// An identity that can sign: a certificate from `signcerts/` and the
/// matching private key from `keystore/`.
pub struct SigningIdentity {
    msp_id: String,
    certificate_pem: Vec<u8>,
    key: SigningKey,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("msp_id", &self.msp_id)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Loads the signing identity of an MSP directory. `signcerts/` holds the
    /// certificate (any file name: `cert.pem` for Fabric CA, `<name>-cert.pem`
    /// for cryptogen); `keystore/` holds the key (`priv_sk`, or `<ski>_sk`).
    /// Fails if the key does not match the certificate.
    pub fn load(msp_dir: &Path, msp_id: &str) -> Result<Self, MaterialError> {
        let signcerts = msp_dir.join("signcerts");
        let cert_path = files(&signcerts)?
            .into_iter()
            .next()
            .ok_or_else(|| MaterialError::invalid(&signcerts, "no signing certificate"))?;
        let keystore = msp_dir.join("keystore");
        let keys = files(&keystore)?;
        let key_path = match keys.iter().find(|k| k.to_string_lossy().ends_with("_sk")) {
            Some(path) => path.clone(),
            None if keys.len() == 1 => keys[0].clone(),
            None => {
                return Err(MaterialError::invalid(
                    &keystore,
                    "no private key (expected a file named *_sk)",
                ));
            }
        };
        Self::from_files(&cert_path, &key_path, msp_id)
    }

    /// The identity of a certificate file and its private key file (PEM),
    /// as an enrolment with a Fabric CA client leaves them. Fails if the key
    /// does not match the certificate.
    pub fn from_files(
        cert_path: &Path,
        key_path: &Path,
        msp_id: &str,
    ) -> Result<Self, MaterialError> {
        let certificate_pem = read(cert_path)?;
        let key = SigningKey::from_pem(&read(key_path)?)
            .map_err(|e| MaterialError::invalid(key_path, e.to_string()))?;

        let cert_der = weft_crypto::pem::certificates(&certificate_pem)
            .map_err(|e| MaterialError::invalid(cert_path, e.to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| MaterialError::invalid(cert_path, "no PEM certificate"))?;
        let public = weft_crypto::PublicKey::from_certificate_der(&cert_der)
            .map_err(|e| MaterialError::invalid(cert_path, e.to_string()))?;
        if public != key.public_key() {
            return Err(MaterialError::invalid(
                key_path,
                format!("key does not match the certificate {}", cert_path.display()),
            ));
        }
        Ok(Self {
            msp_id: msp_id.to_owned(),
            certificate_pem,
            key,
        })
    }

    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    pub fn certificate_pem(&self) -> &[u8] {
        &self.certificate_pem
    }

    /// `msp.SerializedIdentity` bytes: what goes into headers as the creator.
    pub fn serialized(&self) -> Vec<u8> {
        SerializedIdentity {
            mspid: self.msp_id.clone(),
            id_bytes: self.certificate_pem.clone(),
        }
        .encode_to_vec()
    }
}

impl Signer for SigningIdentity {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.key.sign(message)
    }

    fn public_key(&self) -> weft_crypto::PublicKey {
        self.key.public_key()
    }
}
