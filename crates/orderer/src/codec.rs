//! How the orderer writes Raft's own records: log entries, votes, progress,
//! snapshots and the messages between consenters.
//!
//! They are CBOR, so a block inside an entry travels and is stored as raw
//! bytes. Records written as JSON (weft's first format, with blocks as hex)
//! are still read: a JSON record starts with `{` or `null`, which no CBOR
//! record of these types does (they are maps, or CBOR's null byte).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format a record was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Cbor,
    Json,
}

impl Format {
    pub fn of(bytes: &[u8]) -> Self {
        match bytes.first() {
            Some(b'{' | b'n') => Format::Json,
            _ => Format::Cbor,
        }
    }
}

pub fn encode(value: &impl Serialize) -> Result<Vec<u8>, String> {
    encode_as(Format::Cbor, value)
}

pub fn encode_as(format: Format, value: &impl Serialize) -> Result<Vec<u8>, String> {
    match format {
        Format::Cbor => {
            let mut out = Vec::new();
            ciborium::into_writer(value, &mut out).map_err(|e| e.to_string())?;
            Ok(out)
        }
        Format::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
    }
}

/// Reads a record in whichever format it was written.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match Format::of(bytes) {
        Format::Cbor => ciborium::from_reader(bytes).map_err(|e| format!("bad CBOR record: {e}")),
        Format::Json => serde_json::from_slice(bytes).map_err(|e| format!("bad JSON record: {e}")),
    }
}

/// Serde for byte fields: raw bytes in CBOR, lower-case hex in JSON.
pub mod bytes {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&weft_protoutil::hex(bytes))
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BytesVisitor)
        } else {
            deserializer.deserialize_byte_buf(BytesVisitor)
        }
    }

    struct BytesVisitor;

    impl Visitor<'_> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes, or hex text")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<Vec<u8>, E> {
            weft_protoutil::unhex(text).ok_or_else(|| E::custom("bad hex"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Proposal, TypeConfig};
    use openraft::{Entry, EntryPayload, LogId, Vote};

    fn entry(block: Vec<u8>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(3, 1), 42),
            payload: EntryPayload::Normal(Proposal { block }),
        }
    }

    fn block_of(entry: &Entry<TypeConfig>) -> &[u8] {
        match &entry.payload {
            EntryPayload::Normal(p) => &p.block,
            _ => panic!("not a normal entry"),
        }
    }

    #[test]
    fn a_block_is_stored_as_raw_bytes_and_read_back() {
        let block: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let bytes = encode(&entry(block.clone())).expect("encodes");
        assert_eq!(Format::of(&bytes), Format::Cbor);
        assert!(bytes.len() < block.len() + 200, "{} bytes", bytes.len());
        let back: Entry<TypeConfig> = decode(&bytes).expect("decodes");
        assert_eq!(back.log_id.index, 42);
        assert_eq!(block_of(&back), block.as_slice());
    }

    #[test]
    fn records_written_as_json_are_still_read() {
        let json = encode_as(Format::Json, &entry(vec![0, 1, 0xab, 0xff])).expect("encodes");
        assert!(String::from_utf8_lossy(&json).contains("\"0001abff\""));
        let back: Entry<TypeConfig> = decode(&json).expect("decodes");
        assert_eq!(block_of(&back), &[0, 1, 0xab, 0xff]);

        let none: Option<LogId<u64>> = decode(b"null").expect("null");
        assert!(none.is_none());
        let vote = Vote::new(7, 2);
        let json = encode_as(Format::Json, &vote).expect("encodes");
        assert_eq!(decode::<Vote<u64>>(&json).expect("decodes"), vote);
        let cbor = encode(&Some(vote)).expect("encodes");
        assert_eq!(
            decode::<Option<Vote<u64>>>(&cbor).expect("decodes"),
            Some(vote)
        );
        assert_eq!(
            decode::<Option<Vote<u64>>>(&encode(&None::<Vote<u64>>).expect("encodes"))
                .expect("decodes"),
            None
        );
    }

    #[test]
    fn damaged_records_are_refused_by_name() {
        let mut bytes = encode(&entry(vec![1; 100])).expect("encodes");
        bytes.truncate(bytes.len() - 10);
        let err = decode::<Entry<TypeConfig>>(&bytes).expect_err("truncated");
        assert!(err.contains("bad CBOR record"), "{err}");
        let err = decode::<Entry<TypeConfig>>(b"{\"log_id\":").expect_err("truncated json");
        assert!(err.contains("bad JSON record"), "{err}");
    }
}
