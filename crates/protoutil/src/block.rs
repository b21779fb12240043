//! Block hashes and metadata slots.

use weft_crypto::{Sha256, sha256};
use weft_protos::common::{Block, BlockData, BlockHeader, BlockMetadata};

/// The metadata slots of a Fabric block (`common.BlockMetadataIndex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSlot {
    Signatures = 0,
    LastConfig = 1,
    TransactionsFilter = 2,
    Orderer = 3,
    CommitHash = 4,
}

/// Number of metadata slots a new block carries.
pub const METADATA_SLOTS: usize = 5;

/// SHA-256 over the concatenated data entries, as Fabric computes it.
pub fn block_data_hash(data: &BlockData) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for entry in &data.data {
        hasher.update(entry);
    }
    hasher.finish()
}

/// Fabric's block header hash: SHA-256 over the DER encoding of
/// `SEQUENCE { INTEGER number, OCTET STRING previous_hash, OCTET STRING data_hash }`.
pub fn block_header_hash(header: &BlockHeader) -> [u8; 32] {
    sha256(&block_header_bytes(header))
}

/// The DER encoding of a block header that Fabric hashes and that orderers sign
/// (`protoutil.BlockHeaderBytes`).
pub fn block_header_bytes(header: &BlockHeader) -> Vec<u8> {
    let mut body = Vec::with_capacity(80);
    der_unsigned_integer(&mut body, header.number);
    der_element(&mut body, 0x04, &header.previous_hash);
    der_element(&mut body, 0x04, &header.data_hash);
    let mut sequence = Vec::with_capacity(body.len() + 4);
    der_element(&mut sequence, 0x30, &body);
    sequence
}

/// A block with `envelopes` as data, its data hash set, and empty metadata slots.
pub fn new_block(number: u64, previous_hash: Vec<u8>, envelopes: Vec<Vec<u8>>) -> Block {
    let data = BlockData { data: envelopes };
    Block {
        header: Some(BlockHeader {
            number,
            previous_hash,
            data_hash: block_data_hash(&data).to_vec(),
        }),
        data: Some(data),
        metadata: Some(BlockMetadata {
            metadata: vec![Vec::new(); METADATA_SLOTS],
        }),
    }
}

/// A block's data entries (serialized envelopes); none when it has no data.
pub fn block_envelopes(block: &Block) -> &[Vec<u8>] {
    block
        .data
        .as_ref()
        .map(|data| data.data.as_slice())
        .unwrap_or(&[])
}

/// The per-transaction validation codes of a committed block, if present.
pub fn transactions_filter(block: &Block) -> Option<&[u8]> {
    block
        .metadata
        .as_ref()
        .and_then(|metadata| {
            metadata
                .metadata
                .get(MetadataSlot::TransactionsFilter as usize)
        })
        .map(Vec::as_slice)
}

/// The number of the last config block as of `block`, from the orderer's
/// signed metadata (SIGNATURES slot), else from the deprecated LAST_CONFIG
/// slot; `None` when neither holds one.
pub fn last_config_index(block: &Block) -> Option<u64> {
    use weft_protos::Message as _;
    use weft_protos::common::{LastConfig, Metadata, OrdererBlockMetadata};
    let slot = |slot: MetadataSlot| {
        block
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.metadata.get(slot as usize))
            .filter(|bytes| !bytes.is_empty())
            .and_then(|bytes| Metadata::decode(bytes.as_slice()).ok())
    };
    slot(MetadataSlot::Signatures)
        .and_then(|metadata| OrdererBlockMetadata::decode(metadata.value.as_slice()).ok())
        .and_then(|value| value.last_config)
        .or_else(|| {
            slot(MetadataSlot::LastConfig)
                .and_then(|metadata| LastConfig::decode(metadata.value.as_slice()).ok())
        })
        .map(|last| last.index)
}

fn der_length(out: &mut Vec<u8>, length: usize) {
    if length < 0x80 {
        out.push(length as u8);
        return;
    }
    let bytes = length.to_be_bytes();
    let skip = bytes.iter().take_while(|byte| **byte == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

fn der_element(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    der_length(out, content.len());
    out.extend_from_slice(content);
}

/// A non-negative INTEGER in minimal two's-complement form.
fn der_unsigned_integer(out: &mut Vec<u8>, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|byte| **byte == 0).count().min(7);
    let mut content = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(&bytes[skip..]);
    der_element(out, 0x02, &content);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_integer(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        der_unsigned_integer(&mut out, value);
        out
    }

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(der_integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(der_integer(127), [0x02, 0x01, 0x7f]);
        assert_eq!(der_integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_integer(256), [0x02, 0x02, 0x01, 0x00]);
        assert_eq!(
            der_integer(u64::MAX),
            [
                0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]
        );
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let mut out = Vec::new();
        der_element(&mut out, 0x04, &[7u8; 200]);
        assert_eq!(&out[..3], &[0x04, 0x81, 200]);
        let mut out = Vec::new();
        der_element(&mut out, 0x04, &[7u8; 300]);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn header_hash_matches_fabric_encoding_of_a_genesis_header() {
        // Genesis header: number 0, no previous hash, data hash of empty data.
        let header = BlockHeader {
            number: 0,
            previous_hash: Vec::new(),
            data_hash: sha256(b"").to_vec(),
        };
        let mut expected = vec![0x30, 3 + 2 + 34, 0x02, 0x01, 0x00, 0x04, 0x00, 0x04, 0x20];
        expected.extend_from_slice(&sha256(b""));
        assert_eq!(block_header_hash(&header), sha256(&expected));
    }

    #[test]
    fn data_hash_covers_every_entry_in_order() {
        let forward = BlockData {
            data: vec![b"a".to_vec(), b"b".to_vec()],
        };
        let backward = BlockData {
            data: vec![b"b".to_vec(), b"a".to_vec()],
        };
        assert_eq!(block_data_hash(&forward), sha256(b"ab"));
        assert_ne!(block_data_hash(&forward), block_data_hash(&backward));
    }
}
