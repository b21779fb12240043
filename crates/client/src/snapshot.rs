//! Ledger snapshot requests to a peer's `protos.Snapshot` service, signed by
//! an admin of the peer's organisation (what `peer snapshot submitrequest|
//! cancelrequest|listpending` send).

use std::path::Path;

use tonic::transport::Channel;
use weft_crypto::Signer as _;
use weft_material::SigningIdentity;
use weft_protos::Message;
use weft_protos::common::SignatureHeader;
use weft_protos::peer::snapshot_client::SnapshotClient;
use weft_protos::peer::{SignedSnapshotRequest, SnapshotQuery, SnapshotRequest};

use crate::{ClientError, read_pem, tls_channel};

/// A connection to one peer's snapshot service, as one (admin) identity.
pub struct SnapshotAdmin {
    client: SnapshotClient<Channel>,
    identity: SigningIdentity,
}

impl std::fmt::Debug for SnapshotAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotAdmin")
            .field("msp_id", &self.identity.msp_id())
            .finish()
    }
}

impl SnapshotAdmin {
    /// A client of the peer at `host:port`, trusting `tls_ca` for its TLS
    /// certificate.
    pub fn connect(
        endpoint: &str,
        tls_ca: &Path,
        identity: SigningIdentity,
    ) -> Result<Self, ClientError> {
        Ok(SnapshotAdmin {
            client: SnapshotClient::new(tls_channel(endpoint, read_pem(tls_ca)?)?),
            identity,
        })
    }

    fn header(&self) -> SignatureHeader {
        SignatureHeader {
            creator: self.identity.serialized(),
            nonce: weft_crypto::random_bytes::<24>().to_vec(),
        }
    }

    fn sign(&self, request: Vec<u8>) -> Result<SignedSnapshotRequest, ClientError> {
        let signature = self.identity.sign(&request)?;
        Ok(SignedSnapshotRequest { request, signature })
    }

    fn request(&self, channel: &str, block: u64) -> Result<SignedSnapshotRequest, ClientError> {
        self.sign(
            SnapshotRequest {
                signature_header: Some(self.header()),
                channel_id: channel.to_owned(),
                block_number: block,
            }
            .encode_to_vec(),
        )
    }

    /// Asks for a snapshot of `channel` at `block` (0: the last committed
    /// block).
    pub async fn generate(&self, channel: &str, block: u64) -> Result<(), ClientError> {
        let request = self.request(channel, block)?;
        self.client
            .clone()
            .generate(request)
            .await
            .map_err(|s| ClientError::from_status("snapshot submitrequest", s))?;
        Ok(())
    }

    /// Withdraws a pending request.
    pub async fn cancel(&self, channel: &str, block: u64) -> Result<(), ClientError> {
        let request = self.request(channel, block)?;
        self.client
            .clone()
            .cancel(request)
            .await
            .map_err(|s| ClientError::from_status("snapshot cancelrequest", s))?;
        Ok(())
    }

    /// The block numbers of the pending requests.
    pub async fn pending(&self, channel: &str) -> Result<Vec<u64>, ClientError> {
        let query = self.sign(
            SnapshotQuery {
                signature_header: Some(self.header()),
                channel_id: channel.to_owned(),
            }
            .encode_to_vec(),
        )?;
        Ok(self
            .client
            .clone()
            .query_pendings(query)
            .await
            .map_err(|s| ClientError::from_status("snapshot listpending", s))?
            .into_inner()
            .block_numbers)
    }
}
