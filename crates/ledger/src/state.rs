//! The world state's record format: versioned values keyed by namespace and key.

use std::collections::BTreeMap;

use weft_protos::Message;
use weft_protos::kvrwset::{KvMetadataEntry, KvMetadataWrite};

use crate::error::LedgerError;

/// The metadata entry holding a key-level endorsement policy
/// (a serialized `common.SignaturePolicyEnvelope`).
pub const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";

/// Where a key was last written: (block number, transaction number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub block: u64,
    pub tx: u64,
}

impl Version {
    pub fn new(block: u64, tx: u64) -> Self {
        Version { block, tx }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.block, self.tx)
    }
}

/// A committed value with its version and state metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue {
    pub value: Vec<u8>,
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub version: Version,
}

impl VersionedValue {
    /// The key-level endorsement policy, if one is set.
    pub fn validation_parameter(&self) -> Option<&[u8]> {
        self.metadata.get(VALIDATION_PARAMETER).map(Vec::as_slice)
    }
}

/// Checks a namespace name (a chaincode name, or `chaincode$$pcollection`).
pub fn check_namespace(namespace: &str) -> Result<(), LedgerError> {
    let invalid = |reason: &str| LedgerError::InvalidNamespace {
        namespace: namespace.into(),
        reason: reason.into(),
    };
    if namespace.is_empty() {
        return Err(invalid("it is empty"));
    }
    if namespace.len() > 255 {
        return Err(invalid("it is longer than 255 bytes"));
    }
    if namespace.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    Ok(())
}

/// `namespace NUL key`: one namespace's keys are contiguous and in key order.
pub(crate) fn state_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(namespace.len() + 1 + key.len());
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

pub(crate) fn namespace_prefix(namespace: &str) -> Vec<u8> {
    state_key(namespace, b"")
}

/// `block u64 BE | tx u64 BE | metadata length u32 BE | metadata | value`.
pub(crate) fn encode_value(value: &VersionedValue) -> Vec<u8> {
    let metadata = if value.metadata.is_empty() {
        Vec::new()
    } else {
        KvMetadataWrite {
            key: String::new(),
            entries: value
                .metadata
                .iter()
                .map(|(name, value)| KvMetadataEntry {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
        .encode_to_vec()
    };
    let mut out = Vec::with_capacity(20 + metadata.len() + value.value.len());
    out.extend_from_slice(&value.version.block.to_be_bytes());
    out.extend_from_slice(&value.version.tx.to_be_bytes());
    out.extend_from_slice(&(metadata.len() as u32).to_be_bytes());
    out.extend_from_slice(&metadata);
    out.extend_from_slice(&value.value);
    out
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<VersionedValue, String> {
    let field = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .ok_or_else(|| format!("state record of {} bytes is too short", bytes.len()))
    };
    let block = u64::from_be_bytes(field(0..8)?.try_into().expect("8 bytes"));
    let tx = u64::from_be_bytes(field(8..16)?.try_into().expect("8 bytes"));
    let metadata_length = u32::from_be_bytes(field(16..20)?.try_into().expect("4 bytes")) as usize;
    let metadata_bytes = field(20..20 + metadata_length)?;
    let metadata = if metadata_bytes.is_empty() {
        BTreeMap::new()
    } else {
        KvMetadataWrite::decode(metadata_bytes)
            .map_err(|error| format!("state metadata: {error}"))?
            .entries
            .into_iter()
            .map(|entry| (entry.name, entry.value))
            .collect()
    };
    Ok(VersionedValue {
        value: bytes[20 + metadata_length..].to_vec(),
        metadata,
        version: Version { block, tx },
    })
}

/// The key Fabric's shim builds for `CreateCompositeKey(object_type, attributes)`.
pub fn composite_key(object_type: &str, attributes: &[&str]) -> String {
    let mut key = String::with_capacity(2 + object_type.len() + attributes.len() * 8);
    key.push('\0');
    key.push_str(object_type);
    key.push('\0');
    for attribute in attributes {
        key.push_str(attribute);
        key.push('\0');
    }
    key
}

/// The range end Fabric uses for partial composite key queries.
pub const MAX_UNICODE_RUNE: char = '\u{10FFFF}';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_and_without_metadata() {
        let mut value = VersionedValue {
            value: b"{\"a\":1}".to_vec(),
            metadata: BTreeMap::new(),
            version: Version::new(7, 3),
        };
        assert_eq!(decode_value(&encode_value(&value)), Ok(value.clone()));
        value
            .metadata
            .insert(VALIDATION_PARAMETER.into(), b"policy".to_vec());
        let decoded = decode_value(&encode_value(&value)).expect("decodes");
        assert_eq!(decoded.validation_parameter(), Some(&b"policy"[..]));
        assert_eq!(decoded, value);
    }

    #[test]
    fn truncated_records_are_errors() {
        let bytes = encode_value(&VersionedValue {
            value: vec![],
            metadata: BTreeMap::from([("m".into(), vec![1])]),
            version: Version::new(1, 1),
        });
        for length in 0..bytes.len() {
            assert!(decode_value(&bytes[..length]).is_err(), "length {length}");
        }
    }

    #[test]
    fn composite_keys_follow_the_shim() {
        assert_eq!(
            composite_key("asset", &["red", "1"]),
            "\0asset\0red\0\x31\0"
        );
    }
}
