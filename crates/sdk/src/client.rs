//! The client: invoke (submit and wait), submit_async, query, and chaincode
//! events, for the chaincodes of one organisation's configuration.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_client::deliver::{BlockStream, Deliverer};
use weft_client::{ClientError, Endorsed, Gateway};
use weft_material::SigningIdentity;
use weft_protos::Message;
use weft_protos::peer::{ChaincodeEvent as EventMessage, TxValidationCode};

use crate::SdkError;
use crate::config::{self, IdentityConfig, Settings};

/// How many times one signed transaction is sent while its answers are lost.
const SENDS_MAX: u32 = 3;

/// A committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The transaction that committed (after MVCC retries, not the first one's).
    pub tx_id: String,
    /// The chaincode's response payload.
    pub result: Vec<u8>,
    pub block: u64,
    /// Endorsements it took (1 without a read conflict).
    pub attempts: u32,
}

/// A transaction handed to the orderer, whose commit is awaited in the background.
#[derive(Debug)]
pub struct Pending {
    /// The first attempt's transaction id (a retry after a read conflict
    /// commits under another: see [`Committed::tx_id`]).
    pub tx_id: String,
    handle: tokio::task::JoinHandle<Result<Committed, SdkError>>,
}

impl Pending {
    /// Waits for the commit (and any retries).
    pub async fn committed(self) -> Result<Committed, SdkError> {
        self.handle.await.map_err(|e| SdkError::Commit {
            tx_id: self.tx_id,
            code: None,
            block: None,
            message: format!("the task waiting for it ended: {e}"),
        })?
    }
}

struct Inner {
    gateway: Gateway,
    deliverer: Deliverer,
    settings: Settings,
}

/// A client of one organisation (its gateway peer, identity, channel).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("msp_id", &self.inner.settings.org.msp_id)
            .field("channel", &self.inner.settings.org.channel)
            .finish_non_exhaustive()
    }
}

fn identity(settings: &Settings) -> Result<SigningIdentity, SdkError> {
    let msp_id = &settings.org.msp_id;
    match &settings.org.identity {
        IdentityConfig::Msp { msp } => SigningIdentity::load(msp, msp_id),
        IdentityConfig::Files { cert, key } => SigningIdentity::from_files(cert, key, msp_id),
    }
    .map_err(|e| SdkError::Config(format!("identity: {e}")))
}

/// Whether the gateway's answer may simply have been lost (the request may
/// or may not have been carried out).
fn answer_lost(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Gateway {
            code: tonic::Code::DeadlineExceeded
                | tonic::Code::Unavailable
                | tonic::Code::Cancelled
                | tonic::Code::Unknown,
            ..
        }
    )
}

/// The gateway's answer when the endorsing peers simulated different
/// results (Fabric's "ProposalResponsePayloads do not match").
fn endorsements_differ(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Gateway { code: tonic::Code::Aborted, message, .. }
            if message.contains("ProposalResponsePayloads do not match")
    )
}

fn is_conflict(code: TxValidationCode) -> bool {
    matches!(
        code,
        TxValidationCode::MvccReadConflict | TxValidationCode::PhantomReadConflict
    )
}

/// What became of one attempt.
enum Attempt {
    Committed(u64),
    Conflict(TxValidationCode),
    Failed(SdkError),
}

fn commit_error(tx_id: &str, error: ClientError) -> Attempt {
    match error {
        ClientError::Invalid { code, .. } if is_conflict(code) => Attempt::Conflict(code),
        ClientError::Invalid { code, block, .. } => Attempt::Failed(SdkError::Commit {
            tx_id: tx_id.to_owned(),
            code: Some(code),
            block: Some(block),
            message: format!("committed invalid: {}", code.as_str_name()),
        }),
        other => Attempt::Failed(SdkError::Commit {
            tx_id: tx_id.to_owned(),
            code: None,
            block: None,
            message: other.to_string(),
        }),
    }
}

impl Client {
    /// The client of organisation `org` in the configuration file at
    /// `path`. Connects lazily (at the first call); call it inside a Tokio
    /// runtime.
    pub fn from_config(path: impl AsRef<Path>, org: &str) -> Result<Self, SdkError> {
        let settings = config::load(path.as_ref(), org)?;
        Self::from_settings(settings)
    }

    /// A client from settings already read.
    pub fn from_settings(settings: Settings) -> Result<Self, SdkError> {
        let gateway_config = &settings.org.gateway;
        let mut gateway = Gateway::connect(
            &gateway_config.endpoint,
            &gateway_config.tls_ca_cert,
            identity(&settings)?,
        )
        .map_err(|e| SdkError::Config(format!("gateway: {e}")))?;
        gateway.timeout = settings.timeout;
        let deliverer = Deliverer::connect(
            &gateway_config.endpoint,
            &gateway_config.tls_ca_cert,
            identity(&settings)?,
        )
        .map_err(|e| SdkError::Config(format!("gateway: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                gateway,
                deliverer,
                settings,
            }),
        })
    }

    pub fn msp_id(&self) -> &str {
        &self.inner.settings.org.msp_id
    }

    pub fn channel(&self) -> &str {
        &self.inner.settings.org.channel
    }

    /// A chaincode of the configuration (or any chaincode of the channel,
    /// endorsed as its policy says).
    pub fn contract(&self, chaincode: &str) -> Contract {
        let config = self.inner.settings.org.chaincodes.get(chaincode);
        Contract {
            client: self.clone(),
            name: config
                .and_then(|c| c.name.clone())
                .unwrap_or_else(|| chaincode.to_owned()),
            key: chaincode.to_owned(),
            transient: BTreeMap::new(),
        }
    }

    fn default_contract(&self) -> Result<Contract, SdkError> {
        let org = &self.inner.settings.org;
        let key = match (&org.default_chaincode, org.chaincodes.len()) {
            (Some(name), _) => name.clone(),
            (None, 1) => org.chaincodes.keys().next().cloned().unwrap_or_default(),
            (None, n) => {
                return Err(SdkError::Config(format!(
                    "{n} chaincodes are configured and none is `defaultChaincode`: use client.contract(name)"
                )));
            }
        };
        Ok(self.contract(&key))
    }

    /// Submits `function(args)` to the default chaincode and waits for the commit.
    pub async fn invoke(
        &self,
        function: &str,
        args: &[impl AsRef<[u8]>],
    ) -> Result<Committed, SdkError> {
        self.default_contract()?.invoke(function, args).await
    }

    /// Submits to the default chaincode; returns once the orderer has the transaction.
    pub async fn submit_async(
        &self,
        function: &str,
        args: &[impl AsRef<[u8]>],
    ) -> Result<Pending, SdkError> {
        self.default_contract()?.submit_async(function, args).await
    }

    /// Evaluates `function(args)` on the default chaincode (nothing is ordered).
    pub async fn query(
        &self,
        function: &str,
        args: &[impl AsRef<[u8]>],
    ) -> Result<Vec<u8>, SdkError> {
        self.default_contract()?.query(function, args).await
    }

    /// The commit of `tx_id`: its block, waiting at most `wait`; an error
    /// when it committed invalid or has not committed by then.
    pub async fn commit_status(&self, tx_id: &str, wait: Duration) -> Result<u64, SdkError> {
        match self
            .inner
            .gateway
            .commit_status_within(self.channel(), tx_id, wait)
            .await
        {
            Ok(block) => Ok(block),
            Err(error) => match commit_error(tx_id, error) {
                Attempt::Conflict(code) => Err(SdkError::Commit {
                    tx_id: tx_id.to_owned(),
                    code: Some(code),
                    block: None,
                    message: format!("committed invalid: {}", code.as_str_name()),
                }),
                Attempt::Failed(error) => Err(error),
                Attempt::Committed(block) => Ok(block),
            },
        }
    }

    /// Events of `chaincode` in valid transactions after `from`, following
    /// the channel as it grows.
    pub async fn chaincode_events(
        &self,
        chaincode: &str,
        from: Checkpoint,
    ) -> Result<EventStream, SdkError> {
        let blocks = self
            .inner
            .deliverer
            .blocks(self.channel(), from.block, true)
            .await
            .map_err(|e| SdkError::Events(e.to_string()))?;
        Ok(EventStream {
            blocks,
            chaincode: chaincode.to_owned(),
            after: from,
            ready: VecDeque::new(),
        })
    }

    /// The channel's height (the number of the next block to commit).
    pub async fn height(&self) -> Result<u64, SdkError> {
        self.inner
            .deliverer
            .height(self.channel())
            .await
            .map_err(|e| SdkError::Events(e.to_string()))
    }

    /// Blocks of the channel from `start`, following it as it grows.
    pub async fn blocks(&self, start: u64) -> Result<BlockStream, SdkError> {
        self.inner
            .deliverer
            .blocks(self.channel(), start, true)
            .await
            .map_err(|e| SdkError::Events(e.to_string()))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let settings = &self.inner.settings;
        let base = settings
            .backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(settings.max_backoff);
        // Jitter: 50–150 %, so conflicting clients do not retry in step.
        let jitter = 50 + u64::from(weft_crypto::random_bytes::<1>()[0]) * 100 / 255;
        base.mul_f64(jitter as f64 / 100.0)
    }

    /// Hands `endorsed` to the orderer and waits for its commit. A lost
    /// answer is followed by a status check and, if it has not committed,
    /// by the same signed transaction again (a copy of a transaction that
    /// commits is a duplicate and cannot commit).
    /// `sent`: the outcome of a first send already made.
    async fn order(
        &self,
        endorsed: Endorsed,
        mut sent: Option<Result<(), ClientError>>,
    ) -> Attempt {
        let gateway = &self.inner.gateway;
        let settings = &self.inner.settings;
        let tx_id = endorsed.tx_id.clone();
        let channel = endorsed.channel.clone();
        let mut sends = 0;
        loop {
            sends += 1;
            let outcome = match sent.take() {
                Some(outcome) => outcome,
                None => gateway.send(endorsed.clone()).await,
            };
            match outcome {
                Ok(()) => break,
                Err(error) if answer_lost(&error) => {
                    tracing::warn!(
                        "transaction {tx_id}: the submit's answer was lost ({error}); checking its commit status"
                    );
                    match gateway
                        .commit_status_within(&channel, &tx_id, settings.commit_check)
                        .await
                    {
                        Ok(block) => return Attempt::Committed(block),
                        Err(status) if answer_lost(&status) && sends < SENDS_MAX => {
                            tracing::warn!(
                                "transaction {tx_id}: not committed within {:?}; sending the same transaction again",
                                settings.commit_check
                            );
                            continue;
                        }
                        Err(status @ ClientError::Invalid { .. }) => {
                            return commit_error(&tx_id, status);
                        }
                        Err(_) => {
                            return Attempt::Failed(SdkError::Submit {
                                tx_id,
                                source: error,
                            });
                        }
                    }
                }
                Err(error) => {
                    return Attempt::Failed(SdkError::Submit {
                        tx_id,
                        source: error,
                    });
                }
            }
        }
        let deadline = Instant::now() + settings.timeout * 2;
        loop {
            match gateway.commit_status(&channel, &tx_id).await {
                Ok(block) => return Attempt::Committed(block),
                Err(error) if answer_lost(&error) && Instant::now() < deadline => {
                    tracing::warn!("transaction {tx_id}: commit status: {error}; asking again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return commit_error(&tx_id, error),
            }
        }
    }
}

/// One chaincode, through the client.
#[derive(Debug, Clone)]
pub struct Contract {
    client: Client,
    /// Its name on the channel.
    name: String,
    /// Its key in the configuration.
    key: String,
    transient: BTreeMap<String, Vec<u8>>,
}

impl Contract {
    /// This contract sending `transient` (private inputs, never in the
    /// transaction) with each proposal.
    pub fn with_transient(mut self, transient: BTreeMap<String, Vec<u8>>) -> Self {
        self.transient = transient;
        self
    }

    fn gateway(&self) -> Gateway {
        let gateway = self.client.inner.gateway.clone();
        if self.transient.is_empty() {
            gateway
        } else {
            gateway.with_transient(self.transient.clone())
        }
    }

    fn endorsers(&self, function: &str) -> Vec<String> {
        self.client
            .inner
            .settings
            .org
            .chaincodes
            .get(&self.key)
            .and_then(|c| c.functions.get(function))
            .and_then(|f| f.orgs.as_ref())
            .map(|orgs| orgs.list())
            .unwrap_or_default()
    }

    fn args(function: &str, args: &[impl AsRef<[u8]>]) -> Vec<Vec<u8>> {
        std::iter::once(function.as_bytes().to_vec())
            .chain(args.iter().map(|a| a.as_ref().to_vec()))
            .collect()
    }

    /// Endorses; endorsements that differ because the peers read different
    /// versions (one has committed a block the other has not yet, as under
    /// contention) are asked for again, like read conflicts.
    async fn endorse(&self, args: &[Vec<u8>], function: &str) -> Result<Endorsed, SdkError> {
        let attempts = self.client.inner.settings.org.retry.attempts;
        let mut attempt = 1;
        loop {
            let endorsed = self
                .gateway()
                .endorse_by(
                    self.client.channel(),
                    &self.name,
                    args,
                    &self.endorsers(function),
                )
                .await;
            match endorsed {
                Ok(endorsed) => return Ok(endorsed),
                Err(source) if attempt < attempts && endorsements_differ(&source) => {
                    let pause = self.client.backoff(attempt);
                    tracing::info!(
                        "{function}: the endorsements differ (peers at different heights); endorsing again in {pause:?}"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(source) => return Err(SdkError::Endorse { source }),
            }
        }
    }

    /// Submits `function(args)` and waits for the commit, retrying read conflicts.
    pub async fn invoke(
        &self,
        function: &str,
        args: &[impl AsRef<[u8]>],
    ) -> Result<Committed, SdkError> {
        let args = Self::args(function, args);
        let endorsed = self.endorse(&args, function).await?;
        self.finish(endorsed, args, function.to_owned(), None).await
    }

    /// Endorses and submits `function(args)`; returns once the orderer has
    /// it, with a handle that waits for the commit (retrying read conflicts).
    pub async fn submit_async(
        &self,
        function: &str,
        args: &[impl AsRef<[u8]>],
    ) -> Result<Pending, SdkError> {
        let args = Self::args(function, args);
        let endorsed = self.endorse(&args, function).await?;
        let tx_id = endorsed.tx_id.clone();
        // Handed over now; a lost answer is recovered, and the commit
        // awaited, in the background.
        let sent = match self.client.inner.gateway.send(endorsed.clone()).await {
            Err(source) if !answer_lost(&source) => {
                return Err(SdkError::Submit { tx_id, source });
            }
            sent => sent,
        };
        let contract = self.clone();
        let function = function.to_owned();
        let handle =
            tokio::spawn(
                async move { contract.finish(endorsed, args, function, Some(sent)).await },
            );
        Ok(Pending { tx_id, handle })
    }

    /// Orders `endorsed` and waits; on a read conflict endorses anew, up to
    /// `retry.attempts` endorsements in all.
    async fn finish(
        &self,
        mut endorsed: Endorsed,
        args: Vec<Vec<u8>>,
        function: String,
        mut sent: Option<Result<(), ClientError>>,
    ) -> Result<Committed, SdkError> {
        let attempts = self.client.inner.settings.org.retry.attempts;
        let mut attempt = 1;
        loop {
            let tx_id = endorsed.tx_id.clone();
            let result = endorsed.result.clone();
            match self.client.order(endorsed, sent.take()).await {
                Attempt::Committed(block) => {
                    return Ok(Committed {
                        tx_id,
                        result,
                        block,
                        attempts: attempt,
                    });
                }
                Attempt::Failed(error) => return Err(error),
                Attempt::Conflict(code) if attempt >= attempts => {
                    return Err(SdkError::Conflicts {
                        tx_id,
                        attempts: attempt,
                        code,
                    });
                }
                Attempt::Conflict(code) => {
                    let pause = self.client.backoff(attempt);
                    tracing::info!(
                        "transaction {tx_id} ({function}): {}; endorsing again in {pause:?} (attempt {} of {attempts})",
                        code.as_str_name(),
                        attempt + 1
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                    endorsed = self.endorse(&args, &function).await?;
                }
            }
        }
    }

    /// Endorses `function(args)` without ordering it: the first half of a
    /// submit, for callers that hand it over themselves with [`Contract::order`].
    pub async fn endorse_only(
        &self,
        function: &str,
        args: &[impl AsRef<[u8]>],
    ) -> Result<(Endorsed, Vec<Vec<u8>>), SdkError> {
        let args = Self::args(function, args);
        Ok((self.endorse(&args, function).await?, args))
    }

    /// The second half: orders an endorsed transaction and waits for its
    /// commit, with the same rules as [`Contract::invoke`].
    pub async fn order(
        &self,
        endorsed: Endorsed,
        args: Vec<Vec<u8>>,
    ) -> Result<Committed, SdkError> {
        let function = args
            .first()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        self.finish(endorsed, args, function, None).await
    }

    /// Evaluates `function(args)` on the gateway peer.
    pub async fn query(
        &self,
        function: &str,
        args: &[impl AsRef<[u8]>],
    ) -> Result<Vec<u8>, SdkError> {
        let args = Self::args(function, args);
        self.gateway()
            .evaluate(self.client.channel(), &self.name, &args)
            .await
            .map_err(|source| SdkError::Evaluate { source })
    }
}

/// A position in the channel's event history: events of transactions at
/// or after (`block`, `tx_index`) are still to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Checkpoint {
    pub block: u64,
    pub tx_index: u32,
}

/// A chaincode event of a valid transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaincodeEvent {
    pub block: u64,
    pub tx_index: u32,
    pub tx_id: String,
    pub chaincode: String,
    pub name: String,
    pub payload: Vec<u8>,
}

impl ChaincodeEvent {
    /// Where to resume to get the events after this one.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            block: self.block,
            tx_index: self.tx_index + 1,
        }
    }
}

/// Chaincode events in commit order.
pub struct EventStream {
    blocks: BlockStream,
    chaincode: String,
    after: Checkpoint,
    ready: VecDeque<ChaincodeEvent>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("chaincode", &self.chaincode)
            .field("after", &self.after)
            .finish()
    }
}

impl EventStream {
    /// The next event (waiting for blocks still to come).
    pub async fn next(&mut self) -> Result<ChaincodeEvent, SdkError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            let block = self
                .blocks
                .next()
                .await
                .map_err(|e| SdkError::Events(e.to_string()))?
                .ok_or_else(|| SdkError::Events("the block stream ended".into()))?
                .block;
            let number = block.header.as_ref().map_or(0, |h| h.number);
            let filter = weft_protoutil::transactions_filter(&block).unwrap_or_default();
            for (index, bytes) in weft_protoutil::block_envelopes(&block).iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let position = Checkpoint {
                    block: number,
                    tx_index: index,
                };
                if position < self.after
                    || filter.get(index as usize).copied() != Some(TxValidationCode::Valid as u8)
                {
                    continue;
                }
                let Ok(parsed) = weft_protoutil::parse_envelope(bytes) else {
                    continue;
                };
                let Some(action) = &parsed.action else {
                    continue;
                };
                let Ok(event) = EventMessage::decode(action.events.as_slice()) else {
                    continue;
                };
                if event.event_name.is_empty() || event.chaincode_id != self.chaincode {
                    continue;
                }
                self.ready.push_back(ChaincodeEvent {
                    block: number,
                    tx_index: index,
                    tx_id: parsed.tx_id().to_owned(),
                    chaincode: event.chaincode_id,
                    name: event.event_name,
                    payload: event.payload,
                });
            }
        }
    }
}
