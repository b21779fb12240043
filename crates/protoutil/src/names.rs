//! Names that arrive from the network and may become part of a file path:
//! channel ids, chaincode names and package ids. Each is checked against
//! Fabric's rule before a node uses it, so `..`, `/` or an absolute path
//! never reaches the file system.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "invalid channel id {0:?}: channel ids start with a lowercase letter and contain only lowercase letters, digits, '.' and '-' (at most 249 characters)"
    )]
    Channel(String),
    #[error(
        "invalid chaincode name {0:?}: names are letters and digits, optionally joined by single '-' or '_' (at most 255 characters)"
    )]
    Chaincode(String),
    #[error(
        "invalid package id {0:?}: package ids are letters, digits and '.', '_', '-', ':', '+' (at most 255 characters, not starting with '.')"
    )]
    PackageId(String),
}

/// The longest channel id Fabric accepts.
pub const CHANNEL_ID_MAX: usize = 249;
const NAME_MAX: usize = 255;

/// Fabric's channel id rule: `[a-z][a-z0-9.-]*`, at most 249 characters.
pub fn check_channel_id(id: &str) -> Result<(), NameError> {
    let mut bytes = id.bytes();
    let valid = id.len() <= CHANNEL_ID_MAX
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(NameError::Channel(id.to_owned()))
    }
}

/// Fabric's chaincode name rule: letters and digits, optionally joined by
/// single `-` or `_`.
pub fn check_chaincode_name(name: &str) -> Result<(), NameError> {
    let valid = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .split(['-', '_'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    if valid {
        Ok(())
    } else {
        Err(NameError::Chaincode(name.to_owned()))
    }
}

/// A package id (`label:hash` in Fabric, or a weft chaincode's name): a
/// single path component that is neither hidden nor `.`/`..`.
pub fn check_package_id(id: &str) -> Result<(), NameError> {
    let valid = !id.is_empty()
        && id.len() <= NAME_MAX
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'+'));
    if valid {
        Ok(())
    } else {
        Err(NameError::PackageId(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_follow_fabric() {
        for good in ["mychannel", "a", "ch-1.test", &"a".repeat(249)] {
            assert!(check_channel_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "../..",
            "/some/dir",
            "a/b",
            "My",
            "1abc",
            "-abc",
            ".hidden",
            "a b",
            "a\0",
            "é",
            &"a".repeat(250),
        ] {
            assert_eq!(
                check_channel_id(bad),
                Err(NameError::Channel(bad.to_owned()))
            );
        }
    }

    #[test]
    fn chaincode_names_and_package_ids() {
        assert!(check_chaincode_name("basic").is_ok());
        assert!(check_chaincode_name("my_cc-2").is_ok());
        for bad in ["", "a/b", "..", "a--b", "_a", "a b"] {
            assert!(check_chaincode_name(bad).is_err(), "{bad}");
        }
        assert!(check_package_id("basic_1.0:4ec191e7").is_ok());
        assert!(check_package_id("basic").is_ok());
        for bad in ["", ".", "..", ".x", "a/b", "/abs", "a\\b", "a b"] {
            assert!(check_package_id(bad).is_err(), "{bad}");
        }
    }
}
