use weft_crypto::{HashedMessage, PublicKey, SignatureError, VerifyingKey};

use crate::{MspRole, Principal};

/// The NodeOU role a certificate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    Client,
    Peer,
    Admin,
    Orderer,
}

impl NodeRole {
    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Client => "client",
            NodeRole::Peer => "peer",
            NodeRole::Admin => "admin",
            NodeRole::Orderer => "orderer",
        }
    }
}

/// An identity that an MSP has validated: its certificate chains to the MSP's
/// roots, was within its validity period when validated and is not revoked.
#[derive(Debug, Clone)]
pub struct Identity {
    pub(crate) msp_id: String,
    pub(crate) subject: String,
    pub(crate) certificate_der: Vec<u8>,
    pub(crate) public_key: VerifyingKey,
    pub(crate) role: Option<NodeRole>,
    pub(crate) admin: bool,
    pub(crate) organizational_units: Vec<String>,
    pub(crate) certifiers_identifier: [u8; 32],
    /// The window in which the certificate and its whole chain are valid.
    pub(crate) valid_from: i64,
    pub(crate) valid_until: i64,
}

impl Identity {
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// The certificate's subject, for messages and logs.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    pub fn public_key(&self) -> &PublicKey {
        self.public_key.public_key()
    }

    /// The NodeOU role, when the MSP has NodeOUs enabled.
    pub fn role(&self) -> Option<NodeRole> {
        self.role
    }

    /// Admin by NodeOU or by being listed among the MSP's admin certificates.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    pub fn organizational_units(&self) -> &[String] {
        &self.organizational_units
    }

    /// Whether the certificate and its chain are valid at `now_unix_seconds`.
    pub fn is_valid_at(&self, now_unix_seconds: i64) -> bool {
        (self.valid_from..=self.valid_until).contains(&now_unix_seconds)
    }

    /// Verifies this identity's signature over `message` (low-S DER for ECDSA).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        self.public_key.verify(message, signature)
    }

    /// [`Identity::verify`] over a message already hashed.
    pub fn verify_hashed(
        &self,
        message: &HashedMessage<'_>,
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        self.public_key.verify_hashed(message, signature)
    }

    /// Whether this identity satisfies `principal`, by Fabric's rules.
    pub fn satisfies(&self, principal: &Principal) -> bool {
        if principal.msp_id() != self.msp_id {
            return false;
        }
        match principal {
            Principal::Role { role, .. } => match role {
                MspRole::Member => true,
                MspRole::Admin => self.admin,
                MspRole::Client => self.role == Some(NodeRole::Client),
                MspRole::Peer => self.role == Some(NodeRole::Peer),
                MspRole::Orderer => self.role == Some(NodeRole::Orderer),
            },
            Principal::OrganizationUnit {
                organizational_unit,
                certifiers_identifier,
                ..
            } => {
                self.organizational_units.contains(organizational_unit)
                    && (certifiers_identifier.is_empty()
                        || certifiers_identifier.as_slice() == self.certifiers_identifier)
            }
            Principal::Identity {
                certificate_der, ..
            } => *certificate_der == self.certificate_der,
        }
    }
}
