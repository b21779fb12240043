//! The history index record format: every committed write of a key, in commit order.

use weft_protos::Timestamp;

use crate::state::Version;

/// One committed write of a key, as `GetHistoryForKey` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub tx_id: String,
    pub value: Vec<u8>,
    /// The transaction's timestamp (from its channel header).
    pub timestamp: Timestamp,
    pub is_delete: bool,
    pub version: Version,
}

/// `namespace NUL key-length u32 BE | key | block u64 BE | tx u64 BE`:
/// a key's entries are contiguous and in commit order.
pub(crate) fn key_prefix(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(namespace.len() + 5 + key.len() + 16);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

pub(crate) fn entry_key(namespace: &str, key: &[u8], version: Version) -> Vec<u8> {
    let mut out = key_prefix(namespace, key);
    out.extend_from_slice(&version.block.to_be_bytes());
    out.extend_from_slice(&version.tx.to_be_bytes());
    out
}

/// `is_delete u8 | seconds i64 BE | nanos i32 BE | tx id length u16 BE | tx id | value`.
pub(crate) fn encode_entry(
    tx_id: &str,
    timestamp: Timestamp,
    is_delete: bool,
    value: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(15 + tx_id.len() + value.len());
    out.push(u8::from(is_delete));
    out.extend_from_slice(&timestamp.seconds.to_be_bytes());
    out.extend_from_slice(&timestamp.nanos.to_be_bytes());
    out.extend_from_slice(&(tx_id.len() as u16).to_be_bytes());
    out.extend_from_slice(tx_id.as_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_entry(entry_key: &[u8], bytes: &[u8]) -> Result<HistoryEntry, String> {
    let short = || format!("history record of {} bytes is too short", bytes.len());
    let field = |range: std::ops::Range<usize>| bytes.get(range).ok_or_else(short);
    let is_delete = field(0..1)?[0] == 1;
    let seconds = i64::from_be_bytes(field(1..9)?.try_into().expect("8 bytes"));
    let nanos = i32::from_be_bytes(field(9..13)?.try_into().expect("4 bytes"));
    let tx_id_length = u16::from_be_bytes(field(13..15)?.try_into().expect("2 bytes")) as usize;
    let tx_id = String::from_utf8(field(15..15 + tx_id_length)?.to_vec())
        .map_err(|_| "history tx id is not UTF-8".to_string())?;
    let version_bytes = entry_key
        .len()
        .checked_sub(16)
        .and_then(|at| entry_key.get(at..))
        .ok_or_else(|| "history key is too short".to_string())?;
    Ok(HistoryEntry {
        tx_id,
        value: bytes[15 + tx_id_length..].to_vec(),
        timestamp: Timestamp { seconds, nanos },
        is_delete,
        version: Version {
            block: u64::from_be_bytes(version_bytes[0..8].try_into().expect("8 bytes")),
            tx: u64::from_be_bytes(version_bytes[8..16].try_into().expect("8 bytes")),
        },
    })
}
