//! The sink's tables, created and migrated by the sink itself: numbered
//! migrations, each applied once in its own transaction and recorded in
//! `weft_sink_migrations`, under an advisory lock so that sinks starting
//! together migrate once.

use tokio_postgres::Client;

use crate::SinkError;

/// (version, description, SQL), in order. Never edit one that has shipped:
/// add the next.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "blocks, transactions, writes, state, chaincode events, checkpoints",
    r#"
CREATE TABLE blocks (
    channel       TEXT        NOT NULL,
    number        BIGINT      NOT NULL,
    hash          BYTEA       NOT NULL,
    previous_hash BYTEA       NOT NULL,
    data_hash     BYTEA       NOT NULL,
    tx_count      INTEGER     NOT NULL,
    timestamp     TIMESTAMPTZ,
    PRIMARY KEY (channel, number)
);
CREATE TABLE transactions (
    channel         TEXT        NOT NULL,
    block_number    BIGINT      NOT NULL,
    tx_index        INTEGER     NOT NULL,
    tx_id           TEXT        NOT NULL,
    type            TEXT        NOT NULL,
    creator_msp     TEXT,
    creator_subject TEXT,
    validation_code TEXT        NOT NULL,
    is_valid        BOOLEAN     NOT NULL,
    chaincode       TEXT,
    function        TEXT,
    args            JSONB,
    timestamp       TIMESTAMPTZ,
    PRIMARY KEY (channel, block_number, tx_index)
);
CREATE INDEX transactions_tx_id ON transactions (tx_id);
CREATE INDEX transactions_chaincode ON transactions (channel, chaincode, function);
CREATE TABLE writes (
    channel      TEXT    NOT NULL,
    block_number BIGINT  NOT NULL,
    tx_index     INTEGER NOT NULL,
    write_index  INTEGER NOT NULL,
    namespace    TEXT    NOT NULL,
    collection   TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    value        BYTEA   NOT NULL,
    value_json   JSONB,
    is_delete    BOOLEAN NOT NULL,
    PRIMARY KEY (channel, block_number, tx_index, write_index)
);
CREATE INDEX writes_key ON writes (channel, namespace, collection, key);
CREATE TABLE state (
    channel      TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    collection   TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    value        BYTEA   NOT NULL,
    value_json   JSONB,
    block_number BIGINT  NOT NULL,
    tx_index     INTEGER NOT NULL,
    PRIMARY KEY (channel, namespace, collection, key)
);
CREATE TABLE chaincode_events (
    channel      TEXT    NOT NULL,
    block_number BIGINT  NOT NULL,
    tx_index     INTEGER NOT NULL,
    tx_id        TEXT    NOT NULL,
    chaincode    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    payload      BYTEA   NOT NULL,
    payload_json JSONB,
    PRIMARY KEY (channel, block_number, tx_index)
);
CREATE INDEX chaincode_events_name ON chaincode_events (channel, chaincode, name);
CREATE TABLE checkpoints (
    channel      TEXT        PRIMARY KEY,
    block_number BIGINT      NOT NULL,
    block_hash   BYTEA       NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#,
)];

/// The schema version this weft writes.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// Brings the database to the latest schema; returns the versions applied.
/// A database migrated by a newer weft is refused, not touched.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, SinkError> {
    let transaction = client.transaction().await?;
    // One migrator at a time; the lock ends with the transaction.
    transaction
        .execute("SELECT pg_advisory_xact_lock(7765627466)", &[])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS weft_sink_migrations (
                version     INTEGER     PRIMARY KEY,
                description TEXT        NOT NULL,
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let current: i32 = transaction
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM weft_sink_migrations",
            &[],
        )
        .await?
        .get(0);
    if current > latest() {
        return Err(SinkError::Schema(format!(
            "the database's sink schema is version {current}, newer than this weft's {}: run a newer weft",
            latest()
        )));
    }
    let mut applied = Vec::new();
    for (version, description, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        transaction
            .batch_execute(sql)
            .await
            .map_err(|e| SinkError::Schema(format!("migration {version} ({description}): {e}")))?;
        transaction
            .execute(
                "INSERT INTO weft_sink_migrations (version, description) VALUES ($1, $2)",
                &[version, description],
            )
            .await?;
        applied.push(*version);
    }
    transaction.commit().await?;
    Ok(applied)
}
