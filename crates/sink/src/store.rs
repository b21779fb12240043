//! Writing blocks into PostgreSQL: a batch of consecutive blocks, with every
//! row they produce and the channel's checkpoint, in one transaction. The
//! checkpoint row is locked and checked first, and each block must follow
//! the last one written (number and previous hash), so a block is never
//! written twice, never skipped, and never taken from another chain.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::SinkError;
use crate::decode::{BlockRows, json, text};

/// Which rows to write, beyond blocks and checkpoints (always written).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only transactions (and their writes and events) of these
    /// chaincodes; all when empty.
    pub chaincodes: BTreeSet<String>,
    /// Only chaincode events with these names; all when empty.
    pub events: BTreeSet<String>,
    /// No `writes` or `state` rows (large networks that report on
    /// transactions and events only).
    pub skip_writes: bool,
}

impl Filters {
    fn chaincode(&self, name: Option<&str>) -> bool {
        self.chaincodes.is_empty() || name.is_some_and(|n| self.chaincodes.contains(n))
    }
}

/// The last block written for a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub block: u64,
    pub hash: Vec<u8>,
}

/// The channel's checkpoint, if a block of it was ever written.
pub async fn checkpoint(client: &Client, channel: &str) -> Result<Option<Checkpoint>, SinkError> {
    let row = client
        .query_opt(
            "SELECT block_number, block_hash FROM checkpoints WHERE channel = $1",
            &[&channel],
        )
        .await?;
    Ok(row.map(|row| Checkpoint {
        block: row.get::<_, i64>(0) as u64,
        hash: row.get(1),
    }))
}

/// Rows written by one batch, by table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    pub blocks: u64,
    pub transactions: u64,
    pub writes: u64,
    pub state: u64,
    pub chaincode_events: u64,
}

impl Written {
    pub fn rows(&self) -> u64 {
        self.blocks + self.transactions + self.writes + self.state + self.chaincode_events
    }
}

/// Writes `batch` (consecutive blocks) for `channel` and moves its
/// checkpoint to the last of them, in one transaction. `after` is the
/// checkpoint the caller resumed from: if the database's differs (another
/// sink moved it), nothing is written and [`SinkError::Moved`] says so.
pub async fn write_batch(
    client: &mut Client,
    channel: &str,
    after: Option<&Checkpoint>,
    batch: &[BlockRows],
    filters: &Filters,
) -> Result<Written, SinkError> {
    let Some(last) = batch.last() else {
        return Ok(Written::default());
    };
    let mut previous = after.cloned();
    for block in batch {
        if let Some(previous) = &previous {
            if block.number != previous.block + 1 {
                return Err(SinkError::Gap {
                    expected: previous.block + 1,
                    got: block.number,
                });
            }
            if block.previous_hash != previous.hash {
                return Err(SinkError::OtherChain {
                    channel: channel.to_owned(),
                    block: block.number,
                });
            }
        }
        previous = Some(Checkpoint {
            block: block.number,
            hash: block.hash.clone(),
        });
    }

    let transaction = client.transaction().await?;
    let stored = transaction
        .query_opt(
            "SELECT block_number, block_hash FROM checkpoints WHERE channel = $1 FOR UPDATE",
            &[&channel],
        )
        .await?
        .map(|row| Checkpoint {
            block: row.get::<_, i64>(0) as u64,
            hash: row.get(1),
        });
    if stored.as_ref() != after {
        return Err(SinkError::Moved {
            channel: channel.to_owned(),
        });
    }
    let rows = Rows::of(batch, filters);
    let blocks = transaction
        .execute(
            "INSERT INTO blocks (channel, number, hash, previous_hash, data_hash, tx_count, timestamp)
             SELECT $1, n, h, p, d, c, to_timestamp(t)
             FROM UNNEST($2::int8[], $3::bytea[], $4::bytea[], $5::bytea[], $6::int4[], $7::float8[]) AS b(n, h, p, d, c, t)",
            &[&channel, &rows.block_number, &rows.block_hash, &rows.block_previous, &rows.block_data_hash, &rows.block_tx_count, &rows.block_time],
        )
        .await?;
    let transactions = transaction
        .execute(
            "INSERT INTO transactions (channel, block_number, tx_index, tx_id, type, creator_msp, creator_subject,
                                       validation_code, is_valid, chaincode, function, args, timestamp)
             SELECT $1, b, i, id, ty, m, s, v, ok, cc, f, a, to_timestamp(t)
             FROM UNNEST($2::int8[], $3::int4[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                         $9::bool[], $10::text[], $11::text[], $12::jsonb[], $13::float8[])
                  AS x(b, i, id, ty, m, s, v, ok, cc, f, a, t)",
            &[
                &channel, &rows.tx_block, &rows.tx_index, &rows.tx_id, &rows.tx_type, &rows.tx_msp,
                &rows.tx_subject, &rows.tx_code, &rows.tx_valid, &rows.tx_chaincode, &rows.tx_function,
                &rows.tx_args, &rows.tx_time,
            ],
        )
        .await?;
    let mut written = Written {
        blocks,
        transactions,
        ..Written::default()
    };
    if !filters.skip_writes {
        written.writes = transaction
            .execute(
                "INSERT INTO writes (channel, block_number, tx_index, write_index, namespace, collection, key,
                                     value, value_json, is_delete)
                 SELECT $1, b, i, w, n, c, k, v, j, d
                 FROM UNNEST($2::int8[], $3::int4[], $4::int4[], $5::text[], $6::text[], $7::text[],
                             $8::bytea[], $9::jsonb[], $10::bool[]) AS x(b, i, w, n, c, k, v, j, d)",
                &[
                    &channel, &rows.write_block, &rows.write_tx, &rows.write_index, &rows.write_namespace,
                    &rows.write_collection, &rows.write_key, &rows.write_value, &rows.write_json,
                    &rows.write_delete,
                ],
            )
            .await?;
        written.state += state(&transaction, channel, &rows).await?;
    }
    written.chaincode_events = transaction
        .execute(
            "INSERT INTO chaincode_events (channel, block_number, tx_index, tx_id, chaincode, name, payload, payload_json)
             SELECT $1, b, i, id, cc, n, p, j
             FROM UNNEST($2::int8[], $3::int4[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::jsonb[])
                  AS x(b, i, id, cc, n, p, j)",
            &[
                &channel, &rows.event_block, &rows.event_tx, &rows.event_tx_id, &rows.event_chaincode,
                &rows.event_name, &rows.event_payload, &rows.event_json,
            ],
        )
        .await?;
    transaction
        .execute(
            "INSERT INTO checkpoints (channel, block_number, block_hash) VALUES ($1, $2, $3)
             ON CONFLICT (channel) DO UPDATE
             SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, updated_at = now()",
            &[&channel, &(last.number as i64), &last.hash],
        )
        .await?;
    transaction.commit().await?;
    Ok(written)
}

/// Brings `state` to the batch's last value of each key: deletes, then
/// upserts (one row per key, as PostgreSQL's upsert requires).
async fn state(
    transaction: &tokio_postgres::Transaction<'_>,
    channel: &str,
    rows: &Rows,
) -> Result<u64, SinkError> {
    let mut last: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for i in 0..rows.write_key.len() {
        last.insert(
            (
                rows.write_namespace[i].as_str(),
                rows.write_collection[i].as_str(),
                rows.write_key[i].as_str(),
            ),
            i,
        );
    }
    let (deleted, put): (Vec<usize>, Vec<usize>) =
        last.values().partition(|&&i| rows.write_delete[i]);
    let pick = |indexes: &[usize], column: &[String]| -> Vec<String> {
        indexes.iter().map(|&i| column[i].clone()).collect()
    };
    let mut changed = transaction
        .execute(
            "DELETE FROM state s
             USING UNNEST($2::text[], $3::text[], $4::text[]) AS d(n, c, k)
             WHERE s.channel = $1 AND s.namespace = d.n AND s.collection = d.c AND s.key = d.k",
            &[
                &channel,
                &pick(&deleted, &rows.write_namespace),
                &pick(&deleted, &rows.write_collection),
                &pick(&deleted, &rows.write_key),
            ],
        )
        .await?;
    let values: Vec<&[u8]> = put
        .iter()
        .map(|&i| rows.write_value[i].as_slice())
        .collect();
    let json: Vec<Option<&serde_json::Value>> =
        put.iter().map(|&i| rows.write_json[i].as_ref()).collect();
    let blocks: Vec<i64> = put.iter().map(|&i| rows.write_block[i]).collect();
    let txs: Vec<i32> = put.iter().map(|&i| rows.write_tx[i]).collect();
    let params: [&(dyn ToSql + Sync); 8] = [
        &channel,
        &pick(&put, &rows.write_namespace),
        &pick(&put, &rows.write_collection),
        &pick(&put, &rows.write_key),
        &values,
        &json,
        &blocks,
        &txs,
    ];
    changed += transaction
        .execute(
            "INSERT INTO state (channel, namespace, collection, key, value, value_json, block_number, tx_index)
             SELECT $1, n, c, k, v, j, b, i
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[], $6::jsonb[], $7::int8[], $8::int4[])
                  AS x(n, c, k, v, j, b, i)
             ON CONFLICT (channel, namespace, collection, key) DO UPDATE
             SET value = EXCLUDED.value, value_json = EXCLUDED.value_json,
                 block_number = EXCLUDED.block_number, tx_index = EXCLUDED.tx_index",
            &params,
        )
        .await?;
    Ok(changed)
}

/// A batch's rows, column by column (each column one array parameter).
#[derive(Default)]
struct Rows {
    block_number: Vec<i64>,
    block_hash: Vec<Vec<u8>>,
    block_previous: Vec<Vec<u8>>,
    block_data_hash: Vec<Vec<u8>>,
    block_tx_count: Vec<i32>,
    block_time: Vec<Option<f64>>,
    tx_block: Vec<i64>,
    tx_index: Vec<i32>,
    tx_id: Vec<String>,
    tx_type: Vec<String>,
    tx_msp: Vec<Option<String>>,
    tx_subject: Vec<Option<String>>,
    tx_code: Vec<String>,
    tx_valid: Vec<bool>,
    tx_chaincode: Vec<Option<String>>,
    tx_function: Vec<Option<String>>,
    tx_args: Vec<Option<serde_json::Value>>,
    tx_time: Vec<Option<f64>>,
    write_block: Vec<i64>,
    write_tx: Vec<i32>,
    write_index: Vec<i32>,
    write_namespace: Vec<String>,
    write_collection: Vec<String>,
    write_key: Vec<String>,
    write_value: Vec<Vec<u8>>,
    write_json: Vec<Option<serde_json::Value>>,
    write_delete: Vec<bool>,
    event_block: Vec<i64>,
    event_tx: Vec<i32>,
    event_tx_id: Vec<String>,
    event_chaincode: Vec<String>,
    event_name: Vec<String>,
    event_payload: Vec<Vec<u8>>,
    event_json: Vec<Option<serde_json::Value>>,
}

impl Rows {
    fn of(batch: &[BlockRows], filters: &Filters) -> Rows {
        let mut rows = Rows::default();
        for block in batch {
            let number = block.number as i64;
            rows.block_number.push(number);
            rows.block_hash.push(block.hash.clone());
            rows.block_previous.push(block.previous_hash.clone());
            rows.block_data_hash.push(block.data_hash.clone());
            rows.block_tx_count.push(block.transactions.len() as i32);
            rows.block_time.push(block.timestamp);
            let mut kept = BTreeSet::new();
            for tx in &block.transactions {
                if !filters.chaincode(tx.chaincode.as_deref()) {
                    continue;
                }
                kept.insert(tx.index);
                rows.tx_block.push(number);
                rows.tx_index.push(tx.index as i32);
                rows.tx_id.push(text(&tx.tx_id));
                rows.tx_type.push(tx.kind.clone());
                rows.tx_msp.push(tx.creator_msp.as_deref().map(text));
                rows.tx_subject
                    .push(tx.creator_subject.as_deref().map(text));
                rows.tx_code.push(tx.validation_code.clone());
                rows.tx_valid.push(tx.valid);
                rows.tx_chaincode.push(tx.chaincode.as_deref().map(text));
                rows.tx_function.push(tx.function.as_deref().map(text));
                rows.tx_args.push(tx.args.clone());
                rows.tx_time.push(tx.timestamp);
            }
            let mut index_in_tx: BTreeMap<u32, i32> = BTreeMap::new();
            for write in block.writes.iter().filter(|w| kept.contains(&w.tx_index)) {
                let index = index_in_tx.entry(write.tx_index).or_default();
                rows.write_block.push(number);
                rows.write_tx.push(write.tx_index as i32);
                rows.write_index.push(*index);
                *index += 1;
                rows.write_namespace.push(text(&write.namespace));
                rows.write_collection.push(text(&write.collection));
                rows.write_key.push(text(&write.key));
                rows.write_value.push(write.value.clone());
                rows.write_json.push(if write.is_delete {
                    None
                } else {
                    json(&write.value)
                });
                rows.write_delete.push(write.is_delete);
            }
            for event in &block.events {
                if !kept.contains(&event.tx_index)
                    || !(filters.events.is_empty() || filters.events.contains(&event.name))
                {
                    continue;
                }
                rows.event_block.push(number);
                rows.event_tx.push(event.tx_index as i32);
                rows.event_tx_id.push(text(&event.tx_id));
                rows.event_chaincode.push(text(&event.chaincode));
                rows.event_name.push(text(&event.name));
                rows.event_payload.push(event.payload.clone());
                rows.event_json.push(json(&event.payload));
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{EventRow, TransactionRow, WriteRow};

    fn tx(index: u32, chaincode: Option<&str>) -> TransactionRow {
        TransactionRow {
            index,
            tx_id: format!("tx{index}"),
            kind: "ENDORSER_TRANSACTION".into(),
            creator_msp: None,
            creator_subject: None,
            validation_code: "VALID".into(),
            valid: true,
            chaincode: chaincode.map(str::to_owned),
            function: None,
            args: None,
            timestamp: None,
        }
    }

    fn write(tx_index: u32, key: &str) -> WriteRow {
        WriteRow {
            tx_index,
            namespace: "ns".into(),
            collection: String::new(),
            key: key.into(),
            value: b"{}".to_vec(),
            is_delete: false,
        }
    }

    fn event(tx_index: u32, name: &str) -> EventRow {
        EventRow {
            tx_index,
            tx_id: format!("tx{tx_index}"),
            chaincode: "basic".into(),
            name: name.into(),
            payload: Vec::new(),
        }
    }

    fn block() -> BlockRows {
        BlockRows {
            number: 3,
            hash: vec![3],
            previous_hash: vec![2],
            data_hash: vec![],
            timestamp: None,
            transactions: vec![tx(0, None), tx(1, Some("basic")), tx(2, Some("other"))],
            writes: vec![write(1, "a"), write(1, "b"), write(2, "c")],
            events: vec![event(1, "Created"), event(2, "Other")],
        }
    }

    #[test]
    fn filters_keep_the_chaincodes_and_events_asked_for() {
        let all = Rows::of(&[block()], &Filters::default());
        assert_eq!(all.tx_index, vec![0, 1, 2]);
        assert_eq!(all.write_key, vec!["a", "b", "c"]);
        // Numbered within each transaction.
        assert_eq!(all.write_index, vec![0, 1, 0]);
        assert_eq!(all.event_name, vec!["Created", "Other"]);

        let filters = Filters {
            chaincodes: ["basic".to_owned()].into(),
            events: ["Created".to_owned(), "Other".to_owned()].into(),
            skip_writes: false,
        };
        let basic = Rows::of(&[block()], &filters);
        assert_eq!(basic.block_number, vec![3], "blocks are always written");
        assert_eq!(basic.tx_index, vec![1]);
        assert_eq!(basic.write_key, vec!["a", "b"]);
        assert_eq!(basic.event_name, vec!["Created"]);

        let filters = Filters {
            events: ["Other".to_owned()].into(),
            ..Filters::default()
        };
        assert_eq!(Rows::of(&[block()], &filters).event_name, vec!["Other"]);
    }
}
