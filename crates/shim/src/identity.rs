//! The submitting client's identity, as Fabric's client identity library
//! (`cid`) presents it: MSP id, certificate, a unique id built from the
//! certificate's subject and issuer, and Fabric CA attributes.

use prost::Message;
use weft_protos::msp::SerializedIdentity;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// The OID of the extension in which Fabric CA puts a certificate's
/// attributes, as JSON `{"attrs": {...}}`.
const ATTRIBUTES_OID: &str = "1.2.3.4.5.6.7.8.1";

/// The identity that signed the proposal.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    msp_id: String,
    certificate_pem: String,
    id: String,
    attributes: serde_json::Map<String, serde_json::Value>,
}

impl ClientIdentity {
    /// Reads a serialized `msp.SerializedIdentity` holding an X.509
    /// certificate.
    pub fn from_creator(creator: &[u8]) -> Result<Self, String> {
        let serialized = SerializedIdentity::decode(creator)
            .map_err(|e| format!("the creator is not a SerializedIdentity: {e}"))?;
        let der = weft_crypto::pem::certificates(&serialized.id_bytes)
            .map_err(|e| format!("the creator's certificate: {e}"))?
            .into_iter()
            .next()
            .ok_or("the creator holds no certificate")?;
        let (_, certificate) = X509Certificate::from_der(&der)
            .map_err(|e| format!("the creator's certificate: {e}"))?;
        let id = format!(
            "x509::{}::{}",
            distinguished_name(certificate.subject()),
            distinguished_name(certificate.issuer())
        );
        let attributes = certificate
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == ATTRIBUTES_OID)
            .and_then(|e| serde_json::from_slice::<serde_json::Value>(e.value).ok())
            .and_then(|v| v.get("attrs").and_then(|a| a.as_object()).cloned())
            .unwrap_or_default();
        Ok(Self {
            msp_id: serialized.mspid,
            certificate_pem: String::from_utf8_lossy(&serialized.id_bytes).into_owned(),
            id,
            attributes,
        })
    }

    /// The MSP the identity belongs to (`Org1MSP`).
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// `x509::<subject>::<issuer>`, each distinguished name written most
    /// specific first (`CN=User1@org1.example.com,OU=client,L=...,C=US`), as
    /// Fabric's Go `cid.GetID` builds it before base64-encoding it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The certificate, PEM-encoded.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A Fabric CA attribute of the certificate (`hf.EnrollmentID`, or one
    /// registered with `--id.attrs`).
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attributes.get(name).map(|value| match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }

    /// Whether the certificate carries attribute `name` with `value`.
    pub fn has_attribute(&self, name: &str, value: &str) -> bool {
        self.attribute(name).as_deref() == Some(value)
    }
}

/// The name in Go's `pkix.Name` order (C, ST, L, STREET, POSTALCODE, O, OU,
/// CN, SERIALNUMBER), reversed, several values of one type joined by `+`.
fn distinguished_name(name: &X509Name<'_>) -> String {
    const ORDER: [(&str, &str); 9] = [
        ("2.5.4.6", "C"),
        ("2.5.4.8", "ST"),
        ("2.5.4.7", "L"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.17", "POSTALCODE"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.3", "CN"),
        ("2.5.4.5", "SERIALNUMBER"),
    ];
    let mut rdns = Vec::new();
    for (oid, short) in ORDER {
        let values: Vec<String> = name
            .iter_attributes()
            .filter(|a| a.attr_type().to_id_string() == oid)
            .filter_map(|a| a.as_str().ok())
            .map(|value| format!("{short}={}", escape(value)))
            .collect();
        if !values.is_empty() {
            rdns.push(values.join("+"));
        }
    }
    rdns.reverse();
    rdns.join(",")
}

/// RFC 4514 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
