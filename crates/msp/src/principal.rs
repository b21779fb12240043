use weft_protos::Message;
use weft_protos::common::{
    MspPrincipal, MspRole as MspRoleProto, OrganizationUnit, msp_principal::Classification,
    msp_role::MspRoleType,
};
use weft_protos::msp::SerializedIdentity;

use crate::PrincipalError;

/// The roles a policy can demand of an MSP's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MspRole {
    Member,
    Admin,
    Client,
    Peer,
    Orderer,
}

impl MspRole {
    pub const ALL: [MspRole; 5] = [
        MspRole::Member,
        MspRole::Admin,
        MspRole::Client,
        MspRole::Peer,
        MspRole::Orderer,
    ];

    /// The lower-case name used in policy strings (`'Org1MSP.peer'`).
    pub fn name(self) -> &'static str {
        match self {
            MspRole::Member => "member",
            MspRole::Admin => "admin",
            MspRole::Client => "client",
            MspRole::Peer => "peer",
            MspRole::Orderer => "orderer",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }

    fn to_proto(self) -> MspRoleType {
        match self {
            MspRole::Member => MspRoleType::Member,
            MspRole::Admin => MspRoleType::Admin,
            MspRole::Client => MspRoleType::Client,
            MspRole::Peer => MspRoleType::Peer,
            MspRole::Orderer => MspRoleType::Orderer,
        }
    }

    fn from_proto(value: i32) -> Result<Self, PrincipalError> {
        match MspRoleType::try_from(value) {
            Ok(MspRoleType::Member) => Ok(MspRole::Member),
            Ok(MspRoleType::Admin) => Ok(MspRole::Admin),
            Ok(MspRoleType::Client) => Ok(MspRole::Client),
            Ok(MspRoleType::Peer) => Ok(MspRole::Peer),
            Ok(MspRoleType::Orderer) => Ok(MspRole::Orderer),
            Err(_) => Err(PrincipalError::UnknownRole(value)),
        }
    }
}

/// Who a policy asks to sign: Fabric's `common.MSPPrincipal`, decoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// Any identity of `msp_id` with `role` (`'Org1MSP.peer'`).
    Role { msp_id: String, role: MspRole },
    /// Identities of `msp_id` whose certificate carries the OU. A non-empty
    /// `certifiers_identifier` also pins the issuing chain (SHA-256 of the CA
    /// certificates above the identity, concatenated).
    OrganizationUnit {
        msp_id: String,
        organizational_unit: String,
        certifiers_identifier: Vec<u8>,
    },
    /// Exactly this certificate of `msp_id`.
    Identity {
        msp_id: String,
        certificate_der: Vec<u8>,
    },
}

impl Principal {
    pub fn role(msp_id: impl Into<String>, role: MspRole) -> Self {
        Principal::Role {
            msp_id: msp_id.into(),
            role,
        }
    }

    pub fn msp_id(&self) -> &str {
        match self {
            Principal::Role { msp_id, .. }
            | Principal::OrganizationUnit { msp_id, .. }
            | Principal::Identity { msp_id, .. } => msp_id,
        }
    }

    pub fn from_proto(principal: &MspPrincipal) -> Result<Self, PrincipalError> {
        let malformed =
            |e: weft_protos::prost::DecodeError| PrincipalError::Malformed(e.to_string());
        match Classification::try_from(principal.principal_classification) {
            Ok(Classification::Role) => {
                let role =
                    MspRoleProto::decode(principal.principal.as_slice()).map_err(malformed)?;
                Ok(Principal::Role {
                    msp_id: role.msp_identifier,
                    role: MspRole::from_proto(role.role)?,
                })
            }
            Ok(Classification::OrganizationUnit) => {
                let ou =
                    OrganizationUnit::decode(principal.principal.as_slice()).map_err(malformed)?;
                Ok(Principal::OrganizationUnit {
                    msp_id: ou.msp_identifier,
                    organizational_unit: ou.organizational_unit_identifier,
                    certifiers_identifier: ou.certifiers_identifier,
                })
            }
            Ok(Classification::Identity) => {
                let id = SerializedIdentity::decode(principal.principal.as_slice())
                    .map_err(malformed)?;
                let der = weft_crypto::pem::certificates(&id.id_bytes)
                    .map_err(|e| PrincipalError::Malformed(e.to_string()))?
                    .swap_remove(0);
                Ok(Principal::Identity {
                    msp_id: id.mspid,
                    certificate_der: der,
                })
            }
            _ => Err(PrincipalError::UnsupportedClassification(
                principal.principal_classification,
            )),
        }
    }

    pub fn to_proto(&self) -> MspPrincipal {
        match self {
            Principal::Role { msp_id, role } => MspPrincipal {
                principal_classification: Classification::Role as i32,
                principal: MspRoleProto {
                    msp_identifier: msp_id.clone(),
                    role: role.to_proto() as i32,
                }
                .encode_to_vec(),
            },
            Principal::OrganizationUnit {
                msp_id,
                organizational_unit,
                certifiers_identifier,
            } => MspPrincipal {
                principal_classification: Classification::OrganizationUnit as i32,
                principal: OrganizationUnit {
                    msp_identifier: msp_id.clone(),
                    organizational_unit_identifier: organizational_unit.clone(),
                    certifiers_identifier: certifiers_identifier.clone(),
                }
                .encode_to_vec(),
            },
            Principal::Identity {
                msp_id,
                certificate_der,
            } => MspPrincipal {
                principal_classification: Classification::Identity as i32,
                principal: SerializedIdentity {
                    mspid: msp_id.clone(),
                    id_bytes: weft_crypto::pem::encode("CERTIFICATE", certificate_der).into_bytes(),
                }
                .encode_to_vec(),
            },
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Role { msp_id, role } => write!(f, "{msp_id}.{}", role.name()),
            Principal::OrganizationUnit {
                msp_id,
                organizational_unit,
                ..
            } => {
                write!(f, "{msp_id} OU={organizational_unit}")
            }
            Principal::Identity { msp_id, .. } => write!(f, "{msp_id} (one certificate)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_principals_round_trip_through_the_proto() {
        for role in MspRole::ALL {
            let p = Principal::role("Org1MSP", role);
            assert_eq!(Principal::from_proto(&p.to_proto()).expect("decodes"), p);
            assert_eq!(p.to_string(), format!("Org1MSP.{}", role.name()));
        }
    }

    #[test]
    fn unknown_classification_and_role_are_named() {
        let anonymity = MspPrincipal {
            principal_classification: 3,
            principal: vec![],
        };
        assert_eq!(
            Principal::from_proto(&anonymity),
            Err(PrincipalError::UnsupportedClassification(3))
        );
        let bad_role = MspPrincipal {
            principal_classification: 0,
            principal: MspRoleProto {
                msp_identifier: "A".into(),
                role: 9,
            }
            .encode_to_vec(),
        };
        assert_eq!(
            Principal::from_proto(&bad_role),
            Err(PrincipalError::UnknownRole(9))
        );
    }
}
