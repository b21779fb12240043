//! Signed transactions and hash-chained blocks, as a client, its endorsers
//! and an orderer together would produce them.

use weft_crypto::Signer;
use weft_material::SigningIdentity;
use weft_protos::Timestamp;
use weft_protos::common::Block;
use weft_protos::peer::Response;
use weft_protoutil::{NamespaceRwSet, TransactionBuilder, block_header_hash, new_block};

/// Builds endorser transactions for one channel: a creator and its endorsers.
pub struct Submitter {
    pub channel_id: String,
    pub creator: SigningIdentity,
    pub endorsers: Vec<SigningIdentity>,
    pub timestamp_seconds: i64,
    next_nonce: u64,
}

impl Submitter {
    pub fn new(
        channel_id: &str,
        creator: SigningIdentity,
        endorsers: Vec<SigningIdentity>,
    ) -> Self {
        Submitter {
            channel_id: channel_id.into(),
            creator,
            endorsers,
            timestamp_seconds: 0,
            next_nonce: 0,
        }
    }

    /// A transaction builder with a fresh nonce (so a fresh tx id).
    pub fn builder(&mut self, chaincode: &str, rwsets: Vec<NamespaceRwSet>) -> TransactionBuilder {
        self.next_nonce += 1;
        let mut nonce = vec![0u8; 24];
        nonce[..8].copy_from_slice(&self.next_nonce.to_be_bytes());
        nonce[8..16].copy_from_slice(&self.timestamp_seconds.to_be_bytes());
        TransactionBuilder {
            channel_id: self.channel_id.clone(),
            chaincode: chaincode.into(),
            creator: self.creator.serialized(),
            nonce,
            timestamp: Timestamp {
                seconds: self.timestamp_seconds,
                nanos: 0,
            },
            args: vec![b"invoke".to_vec()],
            transient: Default::default(),
            rwsets,
            response: Response {
                status: 200,
                message: String::new(),
                payload: Vec::new(),
            },
        }
    }

    /// A signed transaction envelope, endorsed by every endorser.
    pub fn transaction(
        &mut self,
        chaincode: &str,
        rwsets: Vec<NamespaceRwSet>,
    ) -> (String, Vec<u8>) {
        let builder = self.builder(chaincode, rwsets);
        (builder.tx_id(), self.sign(&builder))
    }

    /// Signs `builder` with the creator and every endorser.
    pub fn sign(&self, builder: &TransactionBuilder) -> Vec<u8> {
        let endorsers: Vec<(Vec<u8>, &dyn Signer)> = self
            .endorsers
            .iter()
            .map(|endorser| (endorser.serialized(), endorser as &dyn Signer))
            .collect();
        let endorsers: Vec<(&[u8], &dyn Signer)> = endorsers
            .iter()
            .map(|(serialized, signer)| (serialized.as_slice(), *signer))
            .collect();
        builder
            .build(&self.creator, &endorsers)
            .expect("sign transaction")
    }
}

/// Cuts hash-chained blocks the way an orderer does.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub next_number: u64,
    pub previous_hash: Vec<u8>,
}

impl Chain {
    /// The chain continuing after a block with this number and header hash.
    pub fn after(number: u64, header_hash: Vec<u8>) -> Self {
        Chain {
            next_number: number + 1,
            previous_hash: header_hash,
        }
    }

    pub fn block(&mut self, envelopes: Vec<Vec<u8>>) -> Block {
        let block = new_block(self.next_number, self.previous_hash.clone(), envelopes);
        let header = block.header.as_ref().expect("new blocks have a header");
        self.previous_hash = block_header_hash(header).to_vec();
        self.next_number += 1;
        block
    }
}
