//! Orderer signatures on blocks, in Fabric's layout: the SIGNATURES metadata
//! slot holds `Metadata{value: OrdererBlockMetadata, signatures}` and each
//! signature covers `value ‖ signature_header ‖ DER(block header)`.

use std::sync::Arc;

use weft_crypto::Signer;
use weft_protos::Message;
use weft_protos::common::{
    Block, LastConfig, Metadata, MetadataSignature, OrdererBlockMetadata, SignatureHeader,
};
use weft_protoutil::{MetadataSlot, block_header_bytes};

use crate::{ChannelConfig, PolicyDenied};

/// The policy every block's signatures must satisfy.
pub const BLOCK_VALIDATION_POLICY: &str = "/Channel/Orderer/BlockValidation";

/// Signs `block` as orderer `creator` (serialized identity), recording the
/// last config block and the consenter metadata; also fills LAST_CONFIG.
pub fn sign_block(
    block: &mut Block,
    signer: &dyn Signer,
    creator: Vec<u8>,
    nonce: Vec<u8>,
    last_config: u64,
    consenter_metadata: Vec<u8>,
) -> Result<(), weft_crypto::SignError> {
    let header = block.header.clone().unwrap_or_default();
    let value = OrdererBlockMetadata {
        last_config: Some(LastConfig { index: last_config }),
        consenter_metadata,
    }
    .encode_to_vec();
    let signature_header = SignatureHeader { creator, nonce }.encode_to_vec();
    let mut signed = Vec::with_capacity(value.len() + signature_header.len() + 96);
    signed.extend_from_slice(&value);
    signed.extend_from_slice(&signature_header);
    signed.extend_from_slice(&block_header_bytes(&header));
    let signature = signer.sign(&signed)?;
    let metadata = block.metadata.get_or_insert_with(Default::default);
    if metadata.metadata.len() < weft_protoutil::block::METADATA_SLOTS {
        metadata
            .metadata
            .resize(weft_protoutil::block::METADATA_SLOTS, Vec::new());
    }
    metadata.metadata[MetadataSlot::Signatures as usize] = Metadata {
        value,
        signatures: vec![MetadataSignature {
            signature_header,
            signature,
            identifier_header: Vec::new(),
        }],
    }
    .encode_to_vec();
    metadata.metadata[MetadataSlot::LastConfig as usize] = Metadata {
        value: LastConfig { index: last_config }.encode_to_vec(),
        signatures: Vec::new(),
    }
    .encode_to_vec();
    Ok(())
}

/// Checks a block's orderer signatures against the channel's BlockValidation
/// policy. Block 0 (the genesis block) carries none and is accepted as is.
pub fn verify_block_signatures(
    config: &ChannelConfig,
    block: &Block,
    now_unix_seconds: i64,
) -> Result<(), PolicyDenied> {
    let header = block.header.clone().unwrap_or_default();
    if header.number == 0 {
        return Ok(());
    }
    let slot = block
        .metadata
        .as_ref()
        .and_then(|m| m.metadata.get(MetadataSlot::Signatures as usize))
        .ok_or_else(|| PolicyDenied::Signature("block has no SIGNATURES metadata".into()))?;
    let metadata = Metadata::decode(slot.as_slice())
        .map_err(|e| PolicyDenied::Signature(format!("SIGNATURES metadata: {e}")))?;
    let header_bytes = block_header_bytes(&header);
    let mut signers: Vec<Arc<weft_msp::Identity>> = Vec::new();
    for signature in &metadata.signatures {
        let signature_header = SignatureHeader::decode(signature.signature_header.as_slice())
            .map_err(|e| PolicyDenied::Signature(format!("signature header: {e}")))?;
        let identity = config
            .msps
            .validate(&signature_header.creator, now_unix_seconds)
            .map_err(|e| PolicyDenied::Identity(e.to_string()))?;
        let mut signed = metadata.value.clone();
        signed.extend_from_slice(&signature.signature_header);
        signed.extend_from_slice(&header_bytes);
        identity
            .verify(&signed, &signature.signature)
            .map_err(|e| PolicyDenied::Signature(e.to_string()))?;
        signers.push(identity);
    }
    config.policies.evaluate(BLOCK_VALIDATION_POLICY, &signers)
}
