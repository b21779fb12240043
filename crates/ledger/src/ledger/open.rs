//! Opening a ledger: the block store and state database, the savepoint,
//! and re-applying blocks past it after a crash.

use super::*;

impl Ledger {
    /// Opens (or creates) the ledger of `channel_id` in `dir`, repairing a
    /// torn block store tail and re-applying blocks past the state savepoint.
    pub fn open(
        dir: &Path,
        channel_id: &str,
        config: LedgerConfig,
    ) -> Result<(Ledger, OpenReport), LedgerError> {
        let (blocks, truncated) =
            BlockStore::open(&dir.join("chains"), config.block_store.clone())?;
        let ledger = Ledger::assemble(dir, channel_id, config, blocks)?;
        let replayed_blocks = ledger.recover()?;
        Ok((
            ledger,
            OpenReport {
                truncated,
                replayed_blocks,
            },
        ))
    }

    pub(crate) fn assemble(
        dir: &Path,
        channel_id: &str,
        config: LedgerConfig,
        blocks: BlockStore,
    ) -> Result<Ledger, LedgerError> {
        let db = Database::builder(dir.join("state"))
            .cache_size(config.cache_bytes)
            .open()?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let keyspaces = Keyspaces {
            state: keyspace("state")?,
            index: keyspace("index")?,
            index_definitions: keyspace("index_definitions")?,
            history: keyspace("history")?,
            txids: keyspace("txids")?,
            meta: keyspace("meta")?,
            private_data: keyspace("private_data")?,
        };
        let mut indexes: BTreeMap<String, Vec<IndexDefinition>> = BTreeMap::new();
        for entry in keyspaces.index_definitions.iter() {
            let (key, source) = entry.into_inner()?;
            let namespace = key.split(|byte| *byte == 0).next().unwrap_or_default();
            let definition = std::str::from_utf8(&source)
                .map_err(|error| error.to_string())
                .and_then(|text| IndexDefinition::parse(text).map_err(|error| error.to_string()))
                .map_err(|reason| {
                    corrupt(&dir.join("state"), format!("index definition: {reason}"))
                })?;
            indexes
                .entry(key_string(namespace))
                .or_default()
                .push(definition);
        }
        Ok(Ledger {
            channel_id: channel_id.to_string(),
            dir: dir.to_path_buf(),
            config,
            blocks: RwLock::new(blocks),
            db,
            keyspaces,
            indexes: RwLock::new(indexes),
            commit_lock: Mutex::new(()),
        })
    }

    pub(super) fn savepoint(&self) -> Result<Option<u64>, LedgerError> {
        Ok(match self.keyspaces.meta.get(SAVEPOINT)? {
            None => None,
            Some(bytes) => Some(u64::from_be_bytes(bytes.as_ref().try_into().map_err(
                |_| corrupt(&self.dir.join("state"), "the savepoint is not 8 bytes"),
            )?)),
        })
    }

    pub(super) fn recover(&self) -> Result<u64, LedgerError> {
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let committed = self.height()?;
        let stored = read_lock(&self.blocks).height();
        if committed > stored {
            return Err(LedgerError::StateAhead {
                savepoint: committed - 1,
                height: stored,
            });
        }
        for number in committed..stored {
            let block = read_lock(&self.blocks).block(number)?;
            self.reapply(&block)?;
        }
        Ok(stored - committed)
    }

    /// Re-applies a block already in the block store, using its recorded codes.
    pub(super) fn reapply(&self, block: &Block) -> Result<(), LedgerError> {
        let number = block
            .header
            .as_ref()
            .map(|header| header.number)
            .unwrap_or_default();
        let envelopes = weft_protoutil::block_envelopes(block);
        let filter = weft_protoutil::transactions_filter(block).unwrap_or(&[]);
        if filter.len() != envelopes.len() {
            return Err(LedgerError::MalformedBlock {
                number,
                reason: format!(
                    "{} validation codes for {} transactions",
                    filter.len(),
                    envelopes.len()
                ),
            });
        }
        let mut updates = Updates::new(self);
        for (tx_number, (envelope, code)) in envelopes.iter().zip(filter).enumerate() {
            let version = Version::new(number, tx_number as u64);
            let code = code_from_u8(*code);
            let parsed = parse_envelope(envelope);
            let tx_id = parsed
                .as_ref()
                .map(|tx| tx.tx_id().to_string())
                .unwrap_or_default();
            if code == TxValidationCode::Valid {
                let transaction = parsed.map_err(|error| LedgerError::MalformedBlock {
                    number,
                    reason: format!("transaction {tx_number} is marked valid but {error}"),
                })?;
                let stored = self
                    .keyspaces
                    .private_data
                    .get(private::stored_key(number, tx_number as u64))?
                    .map(|bytes| TxPvtReadWriteSet::decode(bytes.as_ref()))
                    .transpose()
                    .map_err(|error| {
                        corrupt(
                            &self.dir.join("state"),
                            format!("private data of block {number} tx {tx_number}: {error}"),
                        )
                    })?;
                let (private_writes, _) = private::verify(&transaction, stored.as_ref());
                updates.apply(&transaction, version, &private_writes)?;
            }
            if code != TxValidationCode::DuplicateTxid {
                updates.record_tx_id(&tx_id, version, code);
            }
        }
        updates.persist(number)
    }
}
