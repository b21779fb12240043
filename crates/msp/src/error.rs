use thiserror::Error;

/// Why an MSP definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MspError {
    #[error("MSP definition has an empty name")]
    EmptyName,
    #[error("MSP {msp_id} has no root CA certificate")]
    NoRootCertificate { msp_id: String },
    #[error("MSP {msp_id}: {what} is not a valid certificate: {reason}")]
    BadCertificate {
        msp_id: String,
        what: String,
        reason: String,
    },
    #[error("MSP {msp_id}: {what} {subject} is not a CA certificate")]
    NotACertificateAuthority {
        msp_id: String,
        what: String,
        subject: String,
    },
    #[error("MSP {msp_id}: root certificate {subject} is not self-signed")]
    RootNotSelfSigned { msp_id: String, subject: String },
    #[error(
        "MSP {msp_id}: intermediate certificate {subject} does not chain to a root CA of the MSP"
    )]
    IntermediateNotChained { msp_id: String, subject: String },
    #[error("MSP {msp_id}: revocation list is malformed: {reason}")]
    BadRevocationList { msp_id: String, reason: String },
    #[error("MSP {msp_id}: revocation list issued by {issuer} is not signed by a CA of the MSP")]
    RevocationListNotTrusted { msp_id: String, issuer: String },
    #[error("MSP {msp_id}: NodeOU {role} identifier certificate is not a CA of the MSP")]
    NodeOuCertificateUnknown { msp_id: String, role: &'static str },
}

/// Why a serialized identity was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("serialized identity is malformed: {0}")]
    Malformed(String),
    #[error("unknown MSP {msp_id}: it is not an organisation of this channel")]
    UnknownMsp { msp_id: String },
    #[error("identity claiming MSP {msp_id} does not hold a usable certificate: {reason}")]
    BadCertificate { msp_id: String, reason: String },
    #[error("certificate {subject} was not issued by a CA of MSP {msp_id}")]
    UnknownIssuer { msp_id: String, subject: String },
    #[error("certificate {subject} of MSP {msp_id} expired at {not_after}")]
    Expired {
        msp_id: String,
        subject: String,
        not_after: String,
    },
    #[error("certificate {subject} of MSP {msp_id} is not valid before {not_before}")]
    NotYetValid {
        msp_id: String,
        subject: String,
        not_before: String,
    },
    #[error(
        "certificate {subject} of MSP {msp_id} was issued by CA {ca} whose validity has lapsed"
    )]
    IssuerOutOfValidity {
        msp_id: String,
        subject: String,
        ca: String,
    },
    #[error("certificate {subject} (serial {serial}) has been revoked by MSP {msp_id}")]
    Revoked {
        msp_id: String,
        subject: String,
        serial: String,
    },
    #[error(
        "certificate {subject} is a CA certificate and cannot act as an identity of MSP {msp_id}"
    )]
    CertificateAuthorityAsIdentity { msp_id: String, subject: String },
    #[error(
        "certificate {subject} carries none of MSP {msp_id}'s NodeOU roles (client, peer, admin, orderer); its OUs are {ous:?}"
    )]
    NoNodeRole {
        msp_id: String,
        subject: String,
        ous: Vec<String>,
    },
    #[error("certificate {subject} carries several NodeOU roles of MSP {msp_id}: {roles:?}")]
    SeveralNodeRoles {
        msp_id: String,
        subject: String,
        roles: Vec<&'static str>,
    },
}

/// Why an `MSPPrincipal` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrincipalError {
    #[error("MSP principal of classification {0} is not supported")]
    UnsupportedClassification(i32),
    #[error("MSP principal is malformed: {0}")]
    Malformed(String),
    #[error("MSP role {0} is unknown")]
    UnknownRole(i32),
}
