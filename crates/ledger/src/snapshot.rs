//! Snapshots: the world state, tx ids and index definitions at a block
//! height, from which a new ledger starts without the earlier blocks
//! (Fabric's join-by-snapshot). History is not part of a snapshot; a ledger
//! started from one has history from its first block on, as in Fabric. Nor
//! are private data values, only their hashes: as in Fabric, a peer joined
//! from a snapshot holds no private data from before it.
//!
//! Files (each hashed in the signable metadata):
//! `public_state.data`, `txids.data`, `index_definitions.data`,
//! `last_config_block.data` (the channel's last config block as of the
//! snapshot, a serialized `common.Block`: how a joining peer learns the
//! channel's configuration), and `_snapshot_signable_metadata.json`.

use std::fs::File;
use std::io::{BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use fjall::PersistMode;
use serde_json::json;
use weft_crypto::Sha256;
use weft_protoutil::hex;

use weft_protos::Message as _;
use weft_protos::common::Block;

use crate::block_store::BlockStore;
use crate::error::LedgerError;
use crate::ledger::{Ledger, LedgerConfig};
use weft_protoutil::unhex;

const METADATA_FILE: &str = "_snapshot_signable_metadata.json";
const DATA_FILES: [&str; 3] = ["public_state.data", "txids.data", "index_definitions.data"];
const CONFIG_BLOCK_FILE: &str = "last_config_block.data";
/// Meta key of the config block imported with a snapshot.
const IMPORTED_CONFIG_BLOCK: &[u8] = b"imported_config_block";
const LOAD_BATCH_ENTRIES: usize = 10_000;

/// What a snapshot holds, from its signable metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMetadata {
    pub channel_id: String,
    pub last_block_number: u64,
    pub last_block_hash: Vec<u8>,
    pub previous_block_hash: Vec<u8>,
}

fn snapshot_error(path: &Path, reason: impl Into<String>) -> LedgerError {
    LedgerError::Snapshot {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A data file: length-prefixed records, hashed as written.
struct RecordWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hash: Sha256,
}

impl RecordWriter {
    fn create(path: PathBuf) -> Result<Self, LedgerError> {
        let file = File::create(&path).map_err(LedgerError::io(&path))?;
        Ok(RecordWriter {
            path,
            out: BufWriter::new(file),
            hash: Sha256::new(),
        })
    }

    fn record(&mut self, fields: &[&[u8]]) -> Result<(), LedgerError> {
        for field in fields {
            let length = (field.len() as u32).to_be_bytes();
            self.hash.update(&length).update(field);
            self.out
                .write_all(&length)
                .and_then(|()| self.out.write_all(field))
                .map_err(LedgerError::io(&self.path))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<String, LedgerError> {
        let file = self
            .out
            .into_inner()
            .map_err(|error| LedgerError::io(&self.path)(error.into_error()))?;
        file.sync_all().map_err(LedgerError::io(&self.path))?;
        Ok(hex(&self.hash.finish()))
    }
}

/// Reads a data file back, checking its hash, as records of `arity` fields.
fn read_records(
    path: &Path,
    arity: usize,
    expected_hash: &str,
) -> Result<Vec<Vec<Vec<u8>>>, LedgerError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(LedgerError::io(path))?;
    let mut hash = Sha256::new();
    hash.update(&bytes);
    if hex(&hash.finish()) != expected_hash {
        return Err(snapshot_error(
            path,
            "the file does not match its hash in the signable metadata",
        ));
    }
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let mut record = Vec::with_capacity(arity);
        for _ in 0..arity {
            let length = bytes
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or_else(|| snapshot_error(path, format!("truncated record at byte {at}")))?;
            let field = bytes
                .get(at + 4..at + 4 + length)
                .ok_or_else(|| snapshot_error(path, format!("truncated record at byte {at}")))?;
            record.push(field.to_vec());
            at += 4 + length;
        }
        records.push(record);
    }
    Ok(records)
}

impl SnapshotMetadata {
    /// Reads a snapshot directory's `_snapshot_signable_metadata.json`.
    pub fn read(snapshot: &Path) -> Result<SnapshotMetadata, LedgerError> {
        Ok(Self::read_signable(snapshot)?.0)
    }

    fn read_signable(
        snapshot: &Path,
    ) -> Result<(SnapshotMetadata, serde_json::Value), LedgerError> {
        let metadata_path = snapshot.join(METADATA_FILE);
        let text =
            std::fs::read_to_string(&metadata_path).map_err(LedgerError::io(&metadata_path))?;
        let signable: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| snapshot_error(&metadata_path, e.to_string()))?;
        let field = |name: &str| {
            signable
                .get(name)
                .ok_or_else(|| snapshot_error(&metadata_path, format!("missing {name}")))
        };
        let hash_field = |name: &str| {
            field(name)?
                .as_str()
                .and_then(unhex)
                .ok_or_else(|| snapshot_error(&metadata_path, format!("{name} is not hex")))
        };
        let metadata = SnapshotMetadata {
            channel_id: field("channel_name")?
                .as_str()
                .ok_or_else(|| snapshot_error(&metadata_path, "channel_name is not a string"))?
                .to_string(),
            last_block_number: field("last_block_number")?.as_u64().ok_or_else(|| {
                snapshot_error(&metadata_path, "last_block_number is not a number")
            })?,
            last_block_hash: hash_field("last_block_hash")?,
            previous_block_hash: hash_field("previous_block_hash")?,
        };
        let name = &metadata.channel_id;
        let valid_name = name.len() < 250
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !valid_name {
            return Err(snapshot_error(
                &metadata_path,
                format!("channel_name {name:?} is not a valid channel name"),
            ));
        }
        Ok((metadata, signable))
    }
}

/// The snapshot's config block: its hash checked, decoded, not past the
/// snapshot's last block. Returned as the bytes that were hashed.
fn read_config_block(path: &Path, expected_hash: &str, last: u64) -> Result<Vec<u8>, LedgerError> {
    let bytes = std::fs::read(path).map_err(LedgerError::io(path))?;
    if hex(&weft_crypto::sha256(&bytes)) != expected_hash {
        return Err(snapshot_error(
            path,
            "the file does not match its hash in the signable metadata",
        ));
    }
    let block = Block::decode(bytes.as_slice())
        .map_err(|e| snapshot_error(path, format!("not a block: {e}")))?;
    let number = block.header.as_ref().map_or(0, |h| h.number);
    if number > last {
        return Err(snapshot_error(
            path,
            format!("config block {number} is past the snapshot's last block {last}"),
        ));
    }
    Ok(bytes)
}

impl Ledger {
    /// The channel's last config block as of the newest block: the block the
    /// newest block's metadata names (block 0 when it names none), read from
    /// the block store or, for a ledger started from a snapshot, the one
    /// imported with it.
    pub fn last_config_block(&self) -> Result<Block, LedgerError> {
        let height = self.height()?;
        let first = self.first_block_number();
        let index = if height > first {
            weft_protoutil::last_config_index(&self.block(height - 1)?).unwrap_or(0)
        } else {
            0
        };
        if index >= first && index < height {
            return self.block(index);
        }
        let imported = self
            .keyspaces
            .meta
            .get(IMPORTED_CONFIG_BLOCK)?
            .map(|bytes| Block::decode(bytes.as_ref()))
            .transpose()
            .map_err(|e| snapshot_error(&self.dir, format!("the imported config block: {e}")))?;
        match imported {
            Some(block)
                if height == first || block.header.as_ref().map(|h| h.number) == Some(index) =>
            {
                Ok(block)
            }
            _ => Err(LedgerError::NoSuchBlock(index)),
        }
    }

    /// Writes a snapshot of the committed state into `out` (which must not exist).
    pub fn export_snapshot(&self, out: &Path) -> Result<SnapshotMetadata, LedgerError> {
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        if out.exists() {
            return Err(snapshot_error(out, "already exists"));
        }
        let height = self.height()?;
        let last = height
            .checked_sub(1)
            .filter(|last| *last >= self.first_block_number())
            .ok_or_else(|| {
                snapshot_error(out, "the ledger has no committed block to snapshot at")
            })?;
        let block = self.block(last)?;
        let header = block.header.unwrap_or_default();
        let metadata = SnapshotMetadata {
            channel_id: self.channel_id.clone(),
            last_block_number: last,
            last_block_hash: self.last_block_hash(),
            previous_block_hash: header.previous_hash,
        };

        let staging = out.with_extension("partial");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(LedgerError::io(&staging))?;
        let mut hashes = serde_json::Map::new();

        let mut state = RecordWriter::create(staging.join(DATA_FILES[0]))?;
        for entry in self.keyspaces.state.iter() {
            let (key, value) = entry.into_inner()?;
            let namespace = key.split(|byte| *byte == 0).next().unwrap_or_default();
            if crate::private::is_private_namespace(namespace) {
                // Private values stay with the peers entitled to them; the
                // snapshot carries their hashes.
                continue;
            }
            state.record(&[&key, &value])?;
        }
        hashes.insert(DATA_FILES[0].into(), state.finish()?.into());

        let mut txids = RecordWriter::create(staging.join(DATA_FILES[1]))?;
        for entry in self.keyspaces.txids.iter() {
            let (key, value) = entry.into_inner()?;
            txids.record(&[&key, &value])?;
        }
        hashes.insert(DATA_FILES[1].into(), txids.finish()?.into());

        let mut definitions = RecordWriter::create(staging.join(DATA_FILES[2]))?;
        for entry in self.keyspaces.index_definitions.iter() {
            let (key, value) = entry.into_inner()?;
            definitions.record(&[&key, &value])?;
        }
        hashes.insert(DATA_FILES[2].into(), definitions.finish()?.into());

        let config_block = self.last_config_block()?.encode_to_vec();
        let config_path = staging.join(CONFIG_BLOCK_FILE);
        File::create(&config_path)
            .and_then(|mut file| file.write_all(&config_block).and_then(|()| file.sync_all()))
            .map_err(LedgerError::io(&config_path))?;
        hashes.insert(
            CONFIG_BLOCK_FILE.into(),
            hex(&weft_crypto::sha256(&config_block)).into(),
        );

        let signable = json!({
            "channel_name": metadata.channel_id,
            "last_block_number": metadata.last_block_number,
            "last_block_hash": hex(&metadata.last_block_hash),
            "previous_block_hash": hex(&metadata.previous_block_hash),
            "state_db_type": "weft",
            "snapshot_files_raw_hashes": hashes,
        });
        let path = staging.join(METADATA_FILE);
        let text = serde_json::to_string_pretty(&signable)
            .map_err(|e| snapshot_error(&path, e.to_string()))?;
        File::create(&path)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
            })
            .map_err(LedgerError::io(&path))?;
        std::fs::rename(&staging, out).map_err(LedgerError::io(out))?;
        Ok(metadata)
    }

    /// Creates the ledger in `dir` (which must not exist) from the snapshot in
    /// `snapshot`: its next block is the one after the snapshot's last block.
    pub fn from_snapshot(
        snapshot: &Path,
        dir: &Path,
        config: LedgerConfig,
    ) -> Result<(Ledger, SnapshotMetadata), LedgerError> {
        if dir.exists() {
            return Err(snapshot_error(
                dir,
                "a ledger directory already exists there",
            ));
        }
        let (metadata, signable) = SnapshotMetadata::read_signable(snapshot)?;
        let metadata_path = snapshot.join(METADATA_FILE);
        let hashes = signable
            .get("snapshot_files_raw_hashes")
            .ok_or_else(|| snapshot_error(&metadata_path, "missing snapshot_files_raw_hashes"))?;
        let expected = |file: &str| {
            hashes
                .get(file)
                .and_then(|hash| hash.as_str())
                .map(str::to_string)
                .ok_or_else(|| snapshot_error(&metadata_path, format!("no hash for {file}")))
        };
        let state = read_records(&snapshot.join(DATA_FILES[0]), 2, &expected(DATA_FILES[0])?)?;
        let txids = read_records(&snapshot.join(DATA_FILES[1]), 2, &expected(DATA_FILES[1])?)?;
        let definitions =
            read_records(&snapshot.join(DATA_FILES[2]), 2, &expected(DATA_FILES[2])?)?;
        let config_block = read_config_block(
            &snapshot.join(CONFIG_BLOCK_FILE),
            &expected(CONFIG_BLOCK_FILE)?,
            metadata.last_block_number,
        )?;

        // Build in a staging directory and rename it into place, so a crash
        // part-way never leaves a ledger that looks complete.
        let staging = dir.with_extension("importing");
        let _ = std::fs::remove_dir_all(&staging);
        {
            let blocks = BlockStore::bootstrap(
                &staging.join("chains"),
                metadata.last_block_number + 1,
                &metadata.last_block_hash,
                config.block_store.clone(),
            )?;
            let ledger = Ledger::assemble(&staging, &metadata.channel_id, config.clone(), blocks)?;
            for (keyspace, records) in [
                (&ledger.keyspaces.state, &state),
                (&ledger.keyspaces.txids, &txids),
            ] {
                for chunk in records.chunks(LOAD_BATCH_ENTRIES) {
                    let mut batch = ledger.db.batch();
                    for record in chunk {
                        batch.insert(keyspace, record[0].as_slice(), record[1].as_slice());
                    }
                    batch.commit()?;
                }
            }
            for record in &definitions {
                let namespace = record[0]
                    .split(|byte| *byte == 0)
                    .next()
                    .unwrap_or_default();
                let namespace = String::from_utf8_lossy(namespace).into_owned();
                let source = String::from_utf8_lossy(&record[1]).into_owned();
                ledger.define_index(&namespace, &source)?;
            }
            let mut batch = ledger.db.batch().durability(Some(PersistMode::SyncData));
            batch.insert(
                &ledger.keyspaces.meta,
                b"savepoint".as_slice(),
                metadata.last_block_number.to_be_bytes(),
            );
            batch.insert(
                &ledger.keyspaces.meta,
                IMPORTED_CONFIG_BLOCK,
                config_block.as_slice(),
            );
            batch.commit()?;
        }
        std::fs::rename(&staging, dir).map_err(LedgerError::io(dir))?;
        let (ledger, _) = Ledger::open(dir, &metadata.channel_id, config)?;
        Ok((ledger, metadata))
    }
}
