//! `weft events sink`: a channel's blocks into PostgreSQL, exactly once.
//!
//! A reader follows the channel through a peer's Deliver service (blocks
//! with the private data the organisation may read) and decodes each block
//! into rows ([`decode`]); a writer puts consecutive blocks, their rows and
//! the channel's checkpoint into PostgreSQL in one transaction each
//! ([`store`]): many blocks per transaction while catching up, each block as
//! it arrives at the head. Any failure — PostgreSQL or the peer gone, the
//! process killed — loses at most an uncommitted transaction; the next
//! session resumes after the checkpoint. The tables are created and
//! migrated by the sink ([`schema`]).

pub mod decode;
pub mod schema;
pub mod store;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use weft_client::deliver::{DeliverError, Deliverer};
use weft_node::metrics::{Counter, Family, Gauge};
use weft_node::operations::Operations;
use weft_protos::common::Status;

pub use store::{Checkpoint, Filters, Written};

/// Why the sink stopped or a session of it failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("postgres: {}", postgres_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Deliver(#[from] DeliverError),
    #[error("schema: {0}")]
    Schema(String),
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),
    #[error("channel {channel}: another sink moved the checkpoint; resuming from it")]
    Moved { channel: String },
    #[error("the peer sent block {got} where block {expected} was due")]
    Gap { expected: u64, got: u64 },
    #[error(
        "channel {channel}: block {block} on the peer is not the chain written to PostgreSQL \
         (the hashes differ): the peer serves another chain under this channel's name \
         (a network created again?); point the sink at a new database, or delete the channel's \
         rows and its checkpoint"
    )]
    OtherChain { channel: String, block: u64 },
    #[error(
        "channel {channel}: the peer's height {height} does not reach the checkpoint (block \
         {checkpoint} is written): the peer is behind, or serves another chain under this \
         channel's name (a network created again?)"
    )]
    Behind {
        channel: String,
        height: u64,
        checkpoint: u64,
    },
}

/// The server's own message where it sent one (tokio-postgres prints only
/// "db error"), else the client's, with its cause.
fn postgres_text(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

impl SinkError {
    /// Whether a new session may succeed: PostgreSQL or the peer
    /// unreachable, a connection lost, a conflicting writer. Bad
    /// credentials, a refused identity, another chain are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Postgres(error) => match error.code() {
                // A TLS handshake that failed (a certificate not trusted, a
                // server without TLS where it is required) fails again.
                None if error
                    .to_string()
                    .starts_with("error performing TLS handshake") =>
                {
                    false
                }
                // Connection refused or lost (no SQLSTATE), or the server
                // going down, busy, or a transaction conflicting.
                None => true,
                Some(code) => {
                    let code = code.code();
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code == "40001"
                        || code == "40P01"
                        // A concurrent sink wrote the same block first.
                        || code == "23505"
                }
            },
            SinkError::Deliver(DeliverError::Transport(_)) => true,
            SinkError::Deliver(DeliverError::Refused { status }) => {
                *status == Status::ServiceUnavailable
            }
            SinkError::Deliver(DeliverError::Client(_)) => false,
            SinkError::Moved { .. } | SinkError::Gap { .. } => true,
            SinkError::Schema(_)
            | SinkError::Tls(_)
            | SinkError::OtherChain { .. }
            | SinkError::Behind { .. } => false,
        }
    }
}

/// What to follow, where to write it.
#[derive(Debug, Clone)]
pub struct Sink {
    /// A libpq-style URL or key=value string (`postgres://user@host:port/db`).
    pub postgres: String,
    /// TLS to PostgreSQL, verifying the server against a CA; the URL's
    /// `sslmode` (`prefer` by default, `require`) says whether it must be
    /// used. Without it, no TLS.
    pub postgres_tls: Option<tls::PostgresTls>,
    pub channel: String,
    pub deliverer: Deliverer,
    /// The first block when the channel has no checkpoint yet.
    pub from_block: u64,
    /// Keep following at the head; without, stop once caught up.
    pub follow: bool,
    pub filters: Filters,
    /// At most this many blocks per database transaction.
    pub batch_blocks: usize,
    /// At most about this many rows per database transaction.
    pub batch_rows: usize,
}

/// What one run wrote.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub blocks: u64,
    pub transactions: u64,
    pub rows: u64,
    pub last_block: Option<u64>,
    pub elapsed: Duration,
}

/// The sink's metrics, on its operations endpoint.
#[derive(Clone)]
pub struct SinkMetrics {
    checkpoint: Arc<Family<Gauge>>,
    behind: Arc<Family<Gauge>>,
    blocks: Arc<Family<Counter>>,
    rows: Arc<Family<Counter>>,
    retries: Arc<Family<Counter>>,
    healthy: Arc<AtomicBool>,
}

impl std::fmt::Debug for SinkMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkMetrics").finish_non_exhaustive()
    }
}

impl SinkMetrics {
    /// Registers the sink's metrics and a `postgres` health check (failing
    /// while the sink retries) with `operations`.
    pub fn register(operations: &Operations) -> Self {
        let registry = &operations.metrics;
        let metrics = SinkMetrics {
            checkpoint: registry.gauge(
                "weft_sink_checkpoint_block",
                "The last block written to PostgreSQL.",
                &["channel"],
            ),
            behind: registry.gauge(
                "weft_sink_blocks_behind",
                "Blocks the peer has committed that are not yet in PostgreSQL.",
                &["channel"],
            ),
            blocks: registry.counter(
                "weft_sink_blocks_written_total",
                "Blocks written to PostgreSQL.",
                &["channel"],
            ),
            rows: registry.counter(
                "weft_sink_rows_written_total",
                "Rows written to PostgreSQL, by table.",
                &["channel", "table"],
            ),
            retries: registry.counter(
                "weft_sink_retries_total",
                "Sessions ended by a failure the sink retries, by cause.",
                &["channel", "cause"],
            ),
            healthy: Arc::new(AtomicBool::new(true)),
        };
        let healthy = Arc::clone(&metrics.healthy);
        operations.check(
            "postgres",
            Box::new(move || {
                if healthy.load(Ordering::Relaxed) {
                    Ok(())
                } else {
                    Err("the sink is retrying: PostgreSQL or the peer is unavailable".into())
                }
            }),
        );
        metrics
    }

    fn written(&self, channel: &str, written: &Written, checkpoint: u64, height: u64) {
        self.blocks.with(&[channel]).add(written.blocks);
        for (table, rows) in [
            ("blocks", written.blocks),
            ("transactions", written.transactions),
            ("writes", written.writes),
            ("state", written.state),
            ("chaincode_events", written.chaincode_events),
        ] {
            self.rows.with(&[channel, table]).add(rows);
        }
        self.checkpoint.with(&[channel]).set(checkpoint as f64);
        self.behind
            .with(&[channel])
            .set(height.saturating_sub(checkpoint + 1) as f64);
        self.healthy.store(true, Ordering::Relaxed);
    }
}

/// Runs the sink: sessions until it is caught up (without `follow`) or a
/// failure that no retry can mend; retried failures wait 1 s, doubling to
/// 30 s, each said through `progress`.
pub async fn run(
    sink: &Sink,
    metrics: Option<&SinkMetrics>,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, SinkError> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut backoff = Duration::from_secs(1);
    loop {
        let before = summary.blocks;
        match session(sink, metrics, &mut summary, progress).await {
            Ok(()) => {
                summary.elapsed = started.elapsed();
                return Ok(summary);
            }
            Err(error) if error.is_retryable() => {
                if summary.blocks > before {
                    backoff = Duration::from_secs(1);
                }
                if let Some(metrics) = metrics {
                    let cause = match &error {
                        SinkError::Postgres(_) => "postgres",
                        SinkError::Deliver(_) => "peer",
                        _ => "conflict",
                    };
                    metrics.retries.with(&[&sink.channel, cause]).inc();
                    metrics.healthy.store(false, Ordering::Relaxed);
                }
                let wait = if matches!(error, SinkError::Moved { .. }) {
                    Duration::ZERO
                } else {
                    backoff
                };
                progress(&format!(
                    "{error}; nothing after the checkpoint is lost, retrying in {:.0}s",
                    wait.as_secs_f64()
                ));
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(error) => return Err(error),
        }
    }
}

enum Item {
    Block(decode::BlockRows),
    /// The head, for a sink that does not follow.
    End,
}

/// One connection to PostgreSQL and one block stream, from the checkpoint
/// on, until caught up (without `follow`) or a failure.
async fn session(
    sink: &Sink,
    metrics: Option<&SinkMetrics>,
    summary: &mut Summary,
    progress: &mut dyn FnMut(&str),
) -> Result<(), SinkError> {
    let (mut client, connection) = connect(sink).await?;
    let _stop_connection = AbortOnDrop(connection);
    let applied = schema::migrate(&mut client).await?;
    if !applied.is_empty() {
        progress(&format!(
            "schema: applied migration(s) {applied:?} (now version {})",
            schema::latest()
        ));
    }
    let mut after = store::checkpoint(&client, &sink.channel).await?;
    let start = match &after {
        Some(checkpoint) => checkpoint.block + 1,
        None => sink.from_block,
    };
    let mut height = sink.deliverer.height(&sink.channel).await?;
    progress(&format!(
        "channel {}: height {height}; {}",
        sink.channel,
        match &after {
            Some(checkpoint) => format!("resuming after block {}", checkpoint.block),
            None => format!("no checkpoint, starting at block {start}"),
        }
    ));
    if let Some(checkpoint) = &after {
        if height > checkpoint.block {
            // The same chain: the peer's block at the checkpoint is the one
            // written (every later block is checked against its previous).
            let block = sink
                .deliverer
                .block(&sink.channel, checkpoint.block)
                .await?;
            let header = block.header.unwrap_or_default();
            if weft_protoutil::block_header_hash(&header).as_slice() != checkpoint.hash {
                return Err(SinkError::OtherChain {
                    channel: sink.channel.clone(),
                    block: checkpoint.block,
                });
            }
        } else if sink.follow {
            progress(&format!(
                "channel {}: the peer's height {height} does not reach the checkpoint yet; waiting for block {start}",
                sink.channel
            ));
        } else {
            return Err(SinkError::Behind {
                channel: sink.channel.clone(),
                height,
                checkpoint: checkpoint.block,
            });
        }
    }
    if !sink.follow && start >= height {
        return Ok(());
    }
    let mut blocks = sink
        .deliverer
        .blocks(&sink.channel, start, sink.follow)
        .await?;
    // The reader decodes ahead of the writer; the bounded queue holds it
    // (and the peer's stream) back when PostgreSQL is slower.
    let (tx, mut rx) = mpsc::channel::<Result<Item, SinkError>>(256);
    let reader = tokio::spawn(async move {
        loop {
            let item = match blocks.next().await {
                Ok(Some(block)) => Ok(Item::Block(decode::block_rows(
                    &block.block,
                    &block.private_data,
                ))),
                Ok(None) => Ok(Item::End),
                Err(error) => Err(SinkError::Deliver(error)),
            };
            let last = !matches!(item, Ok(Item::Block(_)));
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    let _stop_reader = AbortOnDrop(reader);
    let mut last_said = Instant::now();
    let mut said_blocks = summary.blocks;
    let mut was_at_head = false;
    loop {
        let mut batch = Vec::new();
        let mut rows = 0;
        let mut end = false;
        let mut failed = None;
        let mut next = rx.recv().await;
        loop {
            match next {
                Some(Ok(Item::Block(block))) => {
                    rows += 1 + block.transactions.len() + block.writes.len() + block.events.len();
                    batch.push(block);
                }
                Some(Ok(Item::End)) => end = true,
                Some(Err(error)) => failed = Some(error),
                None => {
                    failed = Some(SinkError::Deliver(DeliverError::Transport(
                        "the block reader stopped".into(),
                    )))
                }
            }
            if end
                || failed.is_some()
                || batch.len() >= sink.batch_blocks
                || rows >= sink.batch_rows
            {
                break;
            }
            match rx.try_recv() {
                Ok(item) => next = Some(item),
                Err(_) => break,
            }
        }
        if let Some(last) = batch.last() {
            height = height.max(last.number + 1);
            let written = store::write_batch(
                &mut client,
                &sink.channel,
                after.as_ref(),
                &batch,
                &sink.filters,
            )
            .await?;
            after = Some(Checkpoint {
                block: last.number,
                hash: last.hash.clone(),
            });
            summary.blocks += written.blocks;
            summary.transactions += written.transactions;
            summary.rows += written.rows();
            summary.last_block = Some(last.number);
            if let Some(metrics) = metrics {
                metrics.written(&sink.channel, &written, last.number, height);
            }
            let at_head = last.number + 1 >= height;
            // At the head, one line on arriving, then at most one per 5 s.
            if (at_head && !was_at_head) || last_said.elapsed() >= Duration::from_secs(5) {
                let seconds = last_said.elapsed().as_secs_f64().max(1e-3);
                let blocks = summary.blocks - said_blocks;
                // A rate only where blocks came faster than they were made
                // (catching up); one block at the head says nothing.
                let rate = if blocks > 1 {
                    format!(
                        " ({blocks} block(s) since the last line, {:.0} blocks/s)",
                        blocks as f64 / seconds
                    )
                } else {
                    String::new()
                };
                progress(&format!(
                    "channel {}: block {} written{rate}{}",
                    sink.channel,
                    last.number,
                    if at_head { "; at the head" } else { "" }
                ));
                last_said = Instant::now();
                said_blocks = summary.blocks;
            }
            was_at_head = at_head;
        }
        if let Some(error) = failed {
            return Err(error);
        }
        if end {
            return Ok(());
        }
    }
}

/// A client, and the task that drives its connection.
async fn connect(
    sink: &Sink,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), SinkError> {
    Ok(match &sink.postgres_tls {
        Some(tls) => {
            let (client, connection) = tokio_postgres::connect(&sink.postgres, tls.clone()).await?;
            (
                client,
                tokio::spawn(async move {
                    let _ = connection.await;
                }),
            )
        }
        None => {
            let (client, connection) =
                tokio_postgres::connect(&sink.postgres, tokio_postgres::NoTls).await?;
            (
                client,
                tokio::spawn(async move {
                    let _ = connection.await;
                }),
            )
        }
    })
}

/// Aborts a task when dropped (a session's reader and connection).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
