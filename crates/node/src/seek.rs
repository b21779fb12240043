//! Signed Deliver seek requests, as Fabric clients send them (peers pulling
//! blocks from orderers, orderers catching up from each other, tests).

use std::time::{SystemTime, UNIX_EPOCH};

use weft_crypto::Signer;
use weft_material::SigningIdentity;
use weft_protos::common::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_protos::orderer::{SeekInfo, SeekPosition, SeekSpecified, seek_position};
use weft_protos::{Message, Timestamp};

/// A seek position at block `number`.
pub fn specified(number: u64) -> SeekPosition {
    SeekPosition {
        r#type: Some(seek_position::Type::Specified(SeekSpecified { number })),
    }
}

/// A DELIVER_SEEK_INFO envelope signed by `signer` (no tx id, no nonce, as
/// Fabric clients send it).
pub fn seek_envelope(
    signer: &SigningIdentity,
    channel_id: &str,
    start: SeekPosition,
    stop: SeekPosition,
    behavior: SeekBehavior,
) -> Result<Envelope, weft_crypto::SignError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let channel_header = ChannelHeader {
        r#type: HeaderType::DeliverSeekInfo as i32,
        channel_id: channel_id.to_owned(),
        timestamp: Some(Timestamp {
            seconds: now.as_secs() as i64,
            nanos: now.subsec_nanos() as i32,
        }),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec(),
            signature_header: SignatureHeader {
                creator: signer.serialized(),
                nonce: Vec::new(),
            }
            .encode_to_vec(),
        }),
        data: SeekInfo {
            start: Some(start),
            stop: Some(stop),
            behavior: behavior as i32,
            ..Default::default()
        }
        .encode_to_vec(),
    }
    .encode_to_vec();
    let signature = signer.sign(&payload)?;
    Ok(Envelope { payload, signature })
}
