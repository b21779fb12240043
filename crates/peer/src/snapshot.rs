//! Ledger snapshots on the peer, as Fabric's `protos.Snapshot` service
//! offers them (`peer snapshot submitrequest|cancelrequest|listpending`).
//!
//! A request names a block: the last committed one (or 0, meaning it) is
//! snapshotted at once; a later one is kept pending (in
//! `<data_dir>/snapshots/pending/<channel>`, so a restart keeps it) and taken
//! right after that block commits. Snapshots go to
//! `<data_dir>/snapshots/completed/<channel>/<block>/`, Fabric's layout; a
//! peer joins a channel from one with `weft peer channel joinbysnapshot`.
//!
//! Requests are signed (`SignedSnapshotRequest`) and must come from an admin
//! of the peer's own organisation, as Fabric's default ACL requires.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use weft_ledger::Ledger;
use weft_protos::peer::snapshot_server::Snapshot;
use weft_protos::peer::{
    QueryPendingSnapshotsResponse, SignedSnapshotRequest, SnapshotQuery, SnapshotRequest,
};

use crate::channel::{Channels, PeerChannel, now_seconds};

/// A channel's pending snapshot requests and where its snapshots go.
#[derive(Debug)]
pub(crate) struct Snapshots {
    channel: String,
    pending_file: PathBuf,
    completed: PathBuf,
    pending: BTreeSet<u64>,
}

/// What a snapshot request led to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Requested {
    /// Taken at once (the block was the last committed one), in this directory.
    Taken(PathBuf),
    /// Kept until the block commits.
    Pending,
}

/// Why a snapshot request or cancellation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The request does not fit the channel's state (a block already past,
    /// a duplicate, nothing to cancel): FAILED_PRECONDITION.
    #[error("{0}")]
    Refused(String),
    /// Reading the ledger or writing the snapshot or the request list
    /// failed: INTERNAL.
    #[error("{0}")]
    Storage(String),
}

impl SnapshotError {
    pub fn into_status(self) -> Status {
        match self {
            SnapshotError::Refused(m) => Status::failed_precondition(m),
            SnapshotError::Storage(m) => Status::internal(m),
        }
    }
}

impl Snapshots {
    /// The requests of `channel` under the peer's snapshot directory `root`.
    pub(crate) fn open(root: &Path, channel: &str) -> Result<Self, String> {
        let pending_file = root.join("pending").join(channel);
        let pending = match std::fs::read_to_string(&pending_file) {
            Ok(text) => text
                .split_whitespace()
                .map(|n| {
                    n.parse::<u64>().map_err(|_| {
                        format!("{}: {n:?} is not a block number", pending_file.display())
                    })
                })
                .collect::<Result<_, _>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(format!("{}: {e}", pending_file.display())),
        };
        Ok(Snapshots {
            channel: channel.to_owned(),
            pending_file,
            completed: root.join("completed").join(channel),
            pending,
        })
    }

    fn save(&self) -> Result<(), String> {
        let error = |e: std::io::Error| format!("{}: {e}", self.pending_file.display());
        if let Some(dir) = self.pending_file.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let text: String = self.pending.iter().map(|n| format!("{n}\n")).collect();
        let staging = self.pending_file.with_extension("new");
        std::fs::write(&staging, text).map_err(error)?;
        std::fs::rename(&staging, &self.pending_file).map_err(error)
    }

    /// The pending requests, oldest block first.
    pub(crate) fn pending(&self) -> Vec<u64> {
        self.pending.iter().copied().collect()
    }

    /// Takes a snapshot at `block` (0: the last committed block) now, or
    /// keeps the request until that block commits. The caller holds the
    /// channel's snapshot lock, so no block commits meanwhile.
    pub(crate) fn request(
        &mut self,
        ledger: &Ledger,
        block: u64,
    ) -> Result<Requested, SnapshotError> {
        let height = ledger
            .height()
            .map_err(|e| SnapshotError::Storage(e.to_string()))?;
        let last = height
            .checked_sub(1)
            .ok_or_else(|| SnapshotError::Refused("the ledger is empty".into()))?;
        let block = if block == 0 { last } else { block };
        if block < last {
            return Err(SnapshotError::Refused(format!(
                "block {block} is already committed: a snapshot can be taken at the last \
                 committed block ({last}) or a later one"
            )));
        }
        if block == last {
            return self
                .take(ledger)
                .map(Requested::Taken)
                .map_err(SnapshotError::Storage);
        }
        if !self.pending.insert(block) {
            return Err(SnapshotError::Refused(format!(
                "a snapshot request for block {block} is already pending"
            )));
        }
        if let Err(error) = self.save() {
            self.pending.remove(&block);
            return Err(SnapshotError::Storage(error));
        }
        Ok(Requested::Pending)
    }

    pub(crate) fn cancel(&mut self, block: u64) -> Result<(), SnapshotError> {
        if !self.pending.remove(&block) {
            return Err(SnapshotError::Refused(format!(
                "no snapshot request for block {block} is pending (pending: {})",
                if self.pending.is_empty() {
                    "none".to_owned()
                } else {
                    self.pending()
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
        if let Err(error) = self.save() {
            self.pending.insert(block);
            return Err(SnapshotError::Storage(error));
        }
        Ok(())
    }

    /// Called with the lock held right after `number` committed: takes the
    /// snapshot a request was waiting for.
    pub(crate) fn after_commit(&mut self, ledger: &Ledger, number: u64) {
        if !self.pending.remove(&number) {
            return;
        }
        let outcome = self.save().and_then(|()| self.take(ledger));
        match outcome {
            Ok(dir) => tracing::info!(
                "channel {}: snapshot at block {number} written to {}",
                self.channel,
                dir.display()
            ),
            Err(error) => tracing::warn!(
                "channel {}: the snapshot requested at block {number} failed: {error}",
                self.channel
            ),
        }
    }

    /// Exports the ledger at its last committed block.
    fn take(&self, ledger: &Ledger) -> Result<PathBuf, String> {
        let height = ledger.height().map_err(|e| e.to_string())?;
        let out = self.completed.join(height.saturating_sub(1).to_string());
        std::fs::create_dir_all(&self.completed)
            .map_err(|e| format!("{}: {e}", self.completed.display()))?;
        ledger.export_snapshot(&out).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// `protos.Snapshot`: Generate, Cancel, QueryPendings.
#[derive(Clone)]
pub struct SnapshotService {
    pub channels: Arc<Channels>,
    /// The peer's organisation, whose admins may ask for snapshots.
    pub msp_id: String,
}

impl SnapshotService {
    /// The channel a signed request is about, once its creator is shown to
    /// be an admin of this peer's organisation who signed it.
    fn authorize(
        &self,
        signed: &SignedSnapshotRequest,
        header: Option<&weft_protos::common::SignatureHeader>,
        channel_id: &str,
    ) -> Result<Arc<PeerChannel>, Status> {
        self.check_signed(signed, header, channel_id)
            .inspect_err(|status| {
                weft_node::refusal!(
                    "snapshot request on channel {channel_id:?} refused: {}",
                    status.message().escape_debug()
                );
            })
    }

    fn check_signed(
        &self,
        signed: &SignedSnapshotRequest,
        header: Option<&weft_protos::common::SignatureHeader>,
        channel_id: &str,
    ) -> Result<Arc<PeerChannel>, Status> {
        let channel = self.channels.get(channel_id).ok_or_else(|| {
            Status::not_found(format!("channel {channel_id:?} not found on this peer"))
        })?;
        let creator = header
            .map(|h| h.creator.as_slice())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Status::invalid_argument("the request has no signature header creator")
            })?;
        let identity = channel
            .config
            .msps
            .validate(creator, now_seconds())
            .map_err(|e| Status::permission_denied(format!("the request's creator: {e}")))?;
        let own = &self.msp_id;
        if identity.msp_id() != own || !identity.is_admin() {
            return Err(Status::permission_denied(format!(
                "snapshot requests need an admin of {own}; {} of {} is not one",
                identity.subject(),
                identity.msp_id()
            )));
        }
        identity
            .verify(&signed.request, &signed.signature)
            .map_err(|e| Status::permission_denied(format!("the request's signature: {e}")))?;
        Ok(channel)
    }

    fn request(
        &self,
        request: &Request<SignedSnapshotRequest>,
    ) -> Result<(Arc<PeerChannel>, u64), Status> {
        let signed = request.get_ref();
        let inner = SnapshotRequest::decode(signed.request.as_slice())
            .map_err(|e| Status::invalid_argument(format!("snapshot request: {e}")))?;
        let channel = self.authorize(signed, inner.signature_header.as_ref(), &inner.channel_id)?;
        Ok((channel, inner.block_number))
    }
}

fn lock(channel: &PeerChannel) -> std::sync::MutexGuard<'_, Snapshots> {
    channel.snapshots.lock().unwrap_or_else(|p| p.into_inner())
}

#[tonic::async_trait]
impl Snapshot for SnapshotService {
    async fn generate(
        &self,
        request: Request<SignedSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let (channel, block) = self.request(&request)?;
        let outcome =
            tokio::task::spawn_blocking(move || lock(&channel).request(&channel.ledger, block))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(SnapshotError::into_status)?;
        if let Requested::Taken(dir) = outcome {
            tracing::info!("snapshot written to {}", dir.display());
        }
        Ok(Response::new(()))
    }

    async fn cancel(
        &self,
        request: Request<SignedSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let (channel, block) = self.request(&request)?;
        lock(&channel)
            .cancel(block)
            .map_err(SnapshotError::into_status)?;
        Ok(Response::new(()))
    }

    async fn query_pendings(
        &self,
        request: Request<SignedSnapshotRequest>,
    ) -> Result<Response<QueryPendingSnapshotsResponse>, Status> {
        let signed = request.get_ref();
        let query = SnapshotQuery::decode(signed.request.as_slice())
            .map_err(|e| Status::invalid_argument(format!("snapshot query: {e}")))?;
        let channel = self.authorize(signed, query.signature_header.as_ref(), &query.channel_id)?;
        let block_numbers = lock(&channel).pending();
        Ok(Response::new(QueryPendingSnapshotsResponse {
            block_numbers,
        }))
    }
}
