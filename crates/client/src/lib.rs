//! A native Fabric Gateway client: what `@hyperledger/fabric-gateway` does,
//! in Rust. It signs proposals and transactions with an identity from an MSP
//! directory and speaks `/gateway.Gateway` to any Fabric 2.4+ peer or weft peer:
//! Evaluate, then Endorse → Submit → CommitStatus for a submit.
//!
//! `weft chaincode invoke|query` use it; so will `weft bench`. [`lifecycle`]
//! approves and commits chaincode definitions through it; [`snapshot`]
//! requests ledger snapshots from a peer; [`deliver`] follows a channel's
//! blocks.

pub mod deliver;
pub mod lifecycle;
pub mod snapshot;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use weft_material::SigningIdentity;
use weft_protos::Message;
use weft_protos::Timestamp;
use weft_protos::common::Envelope;
use weft_protos::gateway::gateway_client::GatewayClient;
use weft_protos::gateway::{
    CommitStatusRequest, EndorseRequest, ErrorDetail, EvaluateRequest, SignedCommitStatusRequest,
    SubmitRequest,
};
use weft_protos::peer::{Response, TxValidationCode};
use weft_protoutil::TransactionBuilder;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Sign(#[from] weft_crypto::SignError),
    /// The gateway answered with a gRPC error; `details` are the peers'
    /// `gateway.ErrorDetail` messages.
    #[error("{step}: {code:?}: {message}{}", details_text(.details))]
    Gateway {
        step: &'static str,
        code: tonic::Code,
        message: String,
        details: Vec<ErrorDetail>,
    },
    /// The peer answered the proposal with an error response.
    #[error("{status} - {message}")]
    Refused { status: i32, message: String },
    #[error("transaction {tx_id} committed as {code:?} in block {block}")]
    Invalid {
        tx_id: String,
        code: TxValidationCode,
        block: u64,
    },
}

fn details_text(details: &[ErrorDetail]) -> String {
    details
        .iter()
        .map(|d| format!("\n  {} ({}): {}", d.address, d.msp_id, d.message))
        .collect()
}

impl ClientError {
    fn from_status(step: &'static str, status: tonic::Status) -> Self {
        let details = weft_protos::google::rpc::Status::decode(status.details())
            .map(|rpc| {
                rpc.details
                    .iter()
                    .filter_map(|any| ErrorDetail::decode(any.value.as_slice()).ok())
                    .collect()
            })
            .unwrap_or_default();
        ClientError::Gateway {
            step,
            code: status.code(),
            message: status.message().to_owned(),
            details,
        }
    }
}

/// A PEM file's bytes.
pub(crate) fn read_pem(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Setup(format!("{}: {e}", path.display())))
}

/// A lazily connecting TLS channel to `host:port`, trusting the PEM `ca`
/// for the server's certificate.
pub(crate) fn tls_channel(endpoint: &str, ca: Vec<u8>) -> Result<Channel, ClientError> {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host);
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name(host);
    Ok(Endpoint::from_shared(format!("https://{endpoint}"))
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| ClientError::Setup(format!("{endpoint}: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// A committed transaction.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub tx_id: String,
    /// The chaincode's response payload, from the endorsement.
    pub result: Vec<u8>,
    pub block: u64,
}

/// An endorsed transaction, not yet signed or ordered.
#[derive(Debug, Clone)]
pub struct Endorsed {
    pub tx_id: String,
    pub channel: String,
    envelope: Envelope,
    /// The chaincode's response payload.
    pub result: Vec<u8>,
}

/// A connection to one gateway peer, as one identity.
#[derive(Clone)]
pub struct Gateway {
    client: GatewayClient<Channel>,
    /// The connection to the peer, for its other services.
    pub(crate) channel: Channel,
    pub(crate) identity: std::sync::Arc<SigningIdentity>,
    creator: Vec<u8>,
    /// Private inputs sent with every proposal (`GetTransient` in the
    /// chaincode); kept out of the transaction.
    transient: std::sync::Arc<std::collections::BTreeMap<String, Vec<u8>>>,
    /// Deadline of each call (commit status waits up to this long).
    pub timeout: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("msp_id", &self.identity.msp_id())
            .finish()
    }
}

impl Gateway {
    /// A lazily connecting client for `host:port`, trusting `tls_ca` for the
    /// peer's TLS certificate (server authentication only, like the Node client).
    pub fn connect(
        endpoint: &str,
        tls_ca: &Path,
        identity: SigningIdentity,
    ) -> Result<Self, ClientError> {
        Self::connect_with_ca(endpoint, read_pem(tls_ca)?, identity)
    }

    /// As [`Gateway::connect`], with the TLS CA certificate given as PEM (a
    /// connection profile's `tlsCACerts.pem`).
    pub fn connect_with_ca(
        endpoint: &str,
        ca: Vec<u8>,
        identity: SigningIdentity,
    ) -> Result<Self, ClientError> {
        let channel = tls_channel(endpoint, ca)?;
        let creator = identity.serialized();
        Ok(Gateway {
            channel: channel.clone(),
            client: GatewayClient::new(channel)
                .max_decoding_message_size(128 * 1024 * 1024)
                .max_encoding_message_size(128 * 1024 * 1024),
            identity: std::sync::Arc::new(identity),
            creator,
            transient: Default::default(),
            timeout: Duration::from_secs(30),
        })
    }

    /// This gateway sending `transient` with each proposal (Fabric's
    /// transient map: private inputs the chaincode reads with
    /// `GetTransient`, never written to the ledger).
    pub fn with_transient(
        mut self,
        transient: std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Self {
        self.transient = std::sync::Arc::new(transient);
        self
    }

    pub(crate) fn builder(
        &self,
        channel: &str,
        chaincode: &str,
        args: &[Vec<u8>],
    ) -> TransactionBuilder {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        TransactionBuilder {
            channel_id: channel.to_owned(),
            chaincode: chaincode.to_owned(),
            creator: self.creator.clone(),
            nonce: weft_crypto::random_bytes::<24>().to_vec(),
            timestamp: Timestamp {
                seconds: now.as_secs() as i64,
                nanos: now.subsec_nanos() as i32,
            },
            args: args.to_vec(),
            transient: (*self.transient).clone(),
            rwsets: Vec::new(),
            response: Response::default(),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Runs a query on the gateway peer (nothing is ordered); returns the
    /// chaincode's payload. `args` are the function name and its arguments.
    pub async fn evaluate(
        &self,
        channel: &str,
        chaincode: &str,
        args: &[Vec<u8>],
    ) -> Result<Vec<u8>, ClientError> {
        let builder = self.builder(channel, chaincode, args);
        let proposal = builder.signed_proposal(self.identity.as_ref())?;
        let response = self
            .client
            .clone()
            .evaluate(self.request(EvaluateRequest {
                transaction_id: builder.tx_id(),
                channel_id: channel.to_owned(),
                proposed_transaction: Some(proposal),
                target_organizations: Vec::new(),
            }))
            .await
            .map_err(|s| ClientError::from_status("evaluate", s))?
            .into_inner();
        Ok(response.result.map(|r| r.payload).unwrap_or_default())
    }

    /// Endorses, submits and waits for the commit; an invalid commit is an error.
    pub async fn submit(
        &self,
        channel: &str,
        chaincode: &str,
        args: &[Vec<u8>],
    ) -> Result<Submitted, ClientError> {
        let endorsed = self.endorse(channel, chaincode, args).await?;
        let tx_id = endorsed.tx_id.clone();
        let result = endorsed.result.clone();
        self.send(endorsed).await?;
        let block = self.commit_status(channel, &tx_id).await?;
        Ok(Submitted {
            tx_id,
            result,
            block,
        })
    }

    /// The first step of a submit: the gateway collects the endorsements the
    /// chaincode's policy needs and returns the transaction to sign.
    pub async fn endorse(
        &self,
        channel: &str,
        chaincode: &str,
        args: &[Vec<u8>],
    ) -> Result<Endorsed, ClientError> {
        self.endorse_by(channel, chaincode, args, &[]).await
    }

    /// As [`Gateway::endorse`], endorsed by peers of `organizations` (MSP
    /// ids) only — Fabric's `endorsing_organizations`; empty lets the
    /// gateway choose from the chaincode's policy.
    pub async fn endorse_by(
        &self,
        channel: &str,
        chaincode: &str,
        args: &[Vec<u8>],
        organizations: &[String],
    ) -> Result<Endorsed, ClientError> {
        let builder = self.builder(channel, chaincode, args);
        let tx_id = builder.tx_id();
        let proposal = builder.signed_proposal(self.identity.as_ref())?;
        let endorsed = self
            .client
            .clone()
            .endorse(self.request(EndorseRequest {
                transaction_id: tx_id.clone(),
                channel_id: channel.to_owned(),
                proposed_transaction: Some(proposal),
                endorsing_organizations: organizations.to_vec(),
            }))
            .await
            .map_err(|s| ClientError::from_status("endorse", s))?
            .into_inner();
        let envelope: Envelope = endorsed.prepared_transaction.ok_or_else(|| {
            ClientError::Setup("endorse: the gateway returned no transaction".into())
        })?;
        let result = weft_protoutil::parse_envelope(&envelope.encode_to_vec())
            .ok()
            .and_then(|tx| tx.action)
            .map(|action| action.response.payload)
            .unwrap_or_default();
        Ok(Endorsed {
            tx_id,
            channel: channel.to_owned(),
            envelope,
            result,
        })
    }

    /// The second step: signs the endorsed transaction and hands it to the
    /// gateway for ordering.
    pub async fn send(&self, endorsed: Endorsed) -> Result<(), ClientError> {
        let mut envelope = endorsed.envelope;
        envelope.signature = weft_crypto::Signer::sign(self.identity.as_ref(), &envelope.payload)?;
        self.client
            .clone()
            .submit(self.request(SubmitRequest {
                transaction_id: endorsed.tx_id,
                channel_id: endorsed.channel,
                prepared_transaction: Some(envelope),
            }))
            .await
            .map_err(|s| ClientError::from_status("submit", s))?;
        Ok(())
    }

    /// The last step: waits until `tx_id` is committed and returns its block;
    /// a transaction committed invalid (an MVCC conflict, say) is an error.
    pub async fn commit_status(&self, channel: &str, tx_id: &str) -> Result<u64, ClientError> {
        self.commit_status_within(channel, tx_id, self.timeout)
            .await
    }

    /// As [`Gateway::commit_status`], waiting at most `wait` (a
    /// `DEADLINE_EXCEEDED` gateway error when the transaction has not
    /// committed by then).
    pub async fn commit_status_within(
        &self,
        channel: &str,
        tx_id: &str,
        wait: Duration,
    ) -> Result<u64, ClientError> {
        let request = CommitStatusRequest {
            transaction_id: tx_id.to_owned(),
            channel_id: channel.to_owned(),
            identity: self.creator.clone(),
        }
        .encode_to_vec();
        let signature = weft_crypto::Signer::sign(self.identity.as_ref(), &request)?;
        let status = self
            .client
            .clone()
            .commit_status({
                let mut request =
                    tonic::Request::new(SignedCommitStatusRequest { request, signature });
                request.set_timeout(wait);
                request
            })
            .await
            .map_err(|s| ClientError::from_status("commit status", s))?
            .into_inner();
        let code = TxValidationCode::try_from(status.result)
            .unwrap_or(TxValidationCode::InvalidOtherReason);
        if code != TxValidationCode::Valid {
            return Err(ClientError::Invalid {
                tx_id: tx_id.to_owned(),
                code,
                block: status.block_number,
            });
        }
        Ok(status.block_number)
    }
}
