//! Fabric CA's authorisation rules: registrars (`hf.Registrar.Roles`) act on
//! the identity types they list, within their affiliation; attributes are
//! registered only as `hf.Registrar.Attributes` allows, and reserved `hf.`
//! attributes only by callers that hold them.

use crate::CaError;
use crate::error::codes;
use crate::store::{Attribute, IdentityRecord};

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The types a registrar may act on, or an authorisation failure.
pub fn registrar_roles(caller: &IdentityRecord) -> Result<Vec<String>, CaError> {
    let roles = list(caller.attribute("hf.Registrar.Roles").unwrap_or(""));
    if roles.is_empty() {
        return Err(CaError::authorization(
            codes::MISSING_REG_ATTR,
            format!("'{}' is not a registrar", caller.name),
        ));
    }
    Ok(roles)
}

/// A registrar may act on identities of `kind` (`client` when empty).
pub fn can_act_on_type(caller: &IdentityRecord, kind: &str) -> Result<(), CaError> {
    let roles = registrar_roles(caller)?;
    let kind = if kind.is_empty() { "client" } else { kind };
    if roles
        .iter()
        .any(|role| role == "*" || role.eq_ignore_ascii_case(kind))
    {
        Ok(())
    } else {
        Err(CaError::authorization(
            codes::REGISTRAR_INVALID_TYPE,
            format!(
                "Registrar '{}' does not have authority to act on type '{kind}'",
                caller.name
            ),
        ))
    }
}

/// The caller's affiliation is `affiliation` or above it (the root is above all).
pub fn contains_affiliation(caller: &IdentityRecord, affiliation: &str) -> Result<(), CaError> {
    let own = &caller.affiliation;
    if own.is_empty()
        || affiliation == own
        || affiliation
            .strip_prefix(own.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
    {
        Ok(())
    } else {
        Err(CaError::authorization(
            codes::CALLER_NOT_AFFILIATED,
            format!(
                "Caller '{}' does not have authority to act on affiliation '{affiliation}'",
                caller.name
            ),
        ))
    }
}

/// A registrar may manage `identity`: its type and its affiliation.
pub fn can_manage(caller: &IdentityRecord, identity: &IdentityRecord) -> Result<(), CaError> {
    contains_affiliation(caller, &identity.affiliation)?;
    can_act_on_type(caller, &identity.kind)
}

/// `hf.AffiliationMgr`.
pub fn affiliation_manager(caller: &IdentityRecord) -> Result<(), CaError> {
    if caller.has_right("hf.AffiliationMgr") {
        Ok(())
    } else {
        Err(CaError::authorization(
            codes::MISSING_ROLE,
            format!(
                "Caller '{}' has a value of 'false' for attribute/role 'hf.AffiliationMgr'",
                caller.name
            ),
        ))
    }
}

const BOOLEAN_RIGHTS: &[&str] = &[
    "hf.Revoker",
    "hf.IntermediateCA",
    "hf.GenCRL",
    "hf.AffiliationMgr",
];
const LIST_RIGHTS: &[&str] = &[
    "hf.Registrar.Roles",
    "hf.Registrar.DelegateRoles",
    "hf.Registrar.Attributes",
];
const FIXED: &[&str] = &["hf.EnrollmentID", "hf.Type", "hf.Affiliation"];

fn allowed_by(name: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        })
}

fn subset(small: &str, big: &str) -> bool {
    let big = list(big);
    list(small)
        .iter()
        .all(|item| big.iter().any(|b| b.eq_ignore_ascii_case(item)))
}

/// Whether `caller` may give `requested` attributes to a new identity
/// (`user` None) or to `user`.
pub fn can_register_attributes(
    requested: &[Attribute],
    user: Option<&IdentityRecord>,
    caller: &IdentityRecord,
) -> Result<(), CaError> {
    let refuse = |reason: String| {
        CaError::authorization(
            codes::REG_ATTR_AUTH,
            format!("Failed to register attribute: {reason}"),
        )
    };
    if requested.is_empty() {
        return Ok(());
    }
    let registrable = list(caller.attribute("hf.Registrar.Attributes").unwrap_or(""));
    if registrable.is_empty() {
        return Err(refuse(format!(
            "Registrar '{}' does not have any values for 'hf.Registrar.Attributes' thus can't register any attributes",
            caller.name
        )));
    }
    for attribute in requested {
        let name = attribute.name.as_str();
        if !allowed_by(name, &registrable) {
            return Err(refuse(format!(
                "Attribute '{name}' is not part of the registrar's 'hf.Registrar.Attributes' {registrable:?}"
            )));
        }
        if FIXED.contains(&name) {
            return Err(refuse(format!(
                "Cannot register fixed value attribute '{name}'"
            )));
        }
        if BOOLEAN_RIGHTS.contains(&name) {
            if !caller.has_right(name) {
                return Err(refuse(format!(
                    "Caller has a value of 'false' for boolean attribute '{name}', can't perform any actions on this attribute"
                )));
            }
            if !attribute.value.is_empty() && attribute.value.parse::<bool>().is_err() {
                return Err(refuse(format!(
                    "'{}' is not a boolean value for '{name}'",
                    attribute.value
                )));
            }
        } else if LIST_RIGHTS.contains(&name) {
            let Some(own) = caller.attribute(name) else {
                return Err(refuse(format!(
                    "Attribute '{name}' requires ownership but the caller does not own this attribute"
                )));
            };
            if attribute.value.is_empty() {
                continue;
            }
            if name == "hf.Registrar.Attributes" {
                for value in list(&attribute.value) {
                    if !allowed_by(&value, &registrable) {
                        return Err(refuse(format!(
                            "'{value}' in 'hf.Registrar.Attributes' is beyond the registrar's own"
                        )));
                    }
                    if value.starts_with("hf.")
                        && !requested.iter().any(|a| a.name == value)
                        && user.is_none_or(|u| u.attribute(&value).is_none())
                    {
                        return Err(refuse(format!(
                            "Requesting value of '{value}' for 'hf.Registrar.Attributes', but the identity does not possess this attribute nor is it being registered with it"
                        )));
                    }
                }
            } else if !list(own).iter().any(|r| r == "*") && !subset(&attribute.value, own) {
                return Err(refuse(format!(
                    "The requested values for attribute '{name}' is a superset of the caller's attribute value"
                )));
            }
        } else if name.starts_with("hf.") {
            return Err(refuse(format!(
                "Registering attribute '{name}' using a reserved prefix 'hf.', however this not a supported reserved attribute"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(affiliation: &str, attrs: &[(&str, &str)]) -> IdentityRecord {
        IdentityRecord {
            name: "registrar".into(),
            secret: String::new(),
            kind: "client".into(),
            affiliation: affiliation.into(),
            attrs: attrs
                .iter()
                .map(|(name, value)| Attribute {
                    name: (*name).into(),
                    value: (*value).into(),
                    ecert: false,
                })
                .collect(),
            max_enrollments: -1,
            enrollments: 0,
            revoked: false,
        }
    }

    fn attr(name: &str, value: &str) -> Attribute {
        Attribute {
            name: name.into(),
            value: value.into(),
            ecert: false,
        }
    }

    #[test]
    fn registrars_act_within_their_types_and_affiliation() {
        let registrar = identity("org1", &[("hf.Registrar.Roles", "client,peer")]);
        assert!(can_act_on_type(&registrar, "peer").is_ok());
        assert!(can_act_on_type(&registrar, "").is_ok());
        assert_eq!(
            can_act_on_type(&registrar, "orderer")
                .expect_err("refused")
                .code,
            codes::AUTHORIZATION_FAILURE
        );
        assert!(contains_affiliation(&registrar, "org1.department1").is_ok());
        assert!(contains_affiliation(&registrar, "org10").is_err());
        assert!(contains_affiliation(&registrar, "org2").is_err());
        let user = identity("", &[]);
        assert_eq!(
            registrar_roles(&user)
                .expect_err("not a registrar")
                .local_code,
            codes::MISSING_REG_ATTR
        );
    }

    #[test]
    fn attributes_follow_the_registrars_allowance() {
        let registrar = identity(
            "",
            &[
                ("hf.Registrar.Roles", "*"),
                (
                    "hf.Registrar.Attributes",
                    "app.*,hf.Revoker,hf.Registrar.Roles",
                ),
                ("hf.Revoker", "true"),
            ],
        );
        assert!(can_register_attributes(&[attr("app.role", "auditor")], None, &registrar).is_ok());
        assert!(can_register_attributes(&[attr("email", "x")], None, &registrar).is_err());
        assert!(can_register_attributes(&[attr("hf.Revoker", "true")], None, &registrar).is_ok());
        assert!(
            can_register_attributes(
                &[attr("hf.Registrar.Roles", "peer,client")],
                None,
                &registrar
            )
            .is_ok()
        );
        let limited = identity(
            "",
            &[
                ("hf.Registrar.Roles", "client"),
                ("hf.Registrar.Attributes", "*"),
            ],
        );
        assert!(
            can_register_attributes(&[attr("hf.Registrar.Roles", "peer")], None, &limited).is_err()
        );
        assert!(can_register_attributes(&[attr("hf.GenCRL", "true")], None, &limited).is_err());
        assert!(can_register_attributes(&[attr("hf.Type", "peer")], None, &limited).is_err());
        assert!(can_register_attributes(&[attr("hf.Made.Up", "1")], None, &limited).is_err());
    }
}
