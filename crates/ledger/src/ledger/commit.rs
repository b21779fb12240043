//! Committing a block: validation verdicts, private data, the block store
//! append and the state batch.

use super::*;

impl Ledger {
    /// Validates `block` and commits it. Transactions that fail validation are
    /// recorded with their code and change no state; an `Err` means the block
    /// itself was refused (wrong number, broken chain) or storage failed, and
    /// nothing was written.
    pub fn commit(
        &self,
        block: Block,
        validator: &Validator<'_>,
    ) -> Result<CommitOutcome, LedgerError> {
        self.commit_with_private_data(block, validator, &PrivateData::new())
    }

    /// [`Ledger::commit`], also committing the private data offered for the
    /// block's valid transactions (see [`crate::private`]), gathered by the
    /// caller beforehand ([`crate::private::wanted_in_block`]).
    pub fn commit_with_private_data(
        &self,
        mut block: Block,
        validator: &Validator<'_>,
        private: &PrivateData,
    ) -> Result<CommitOutcome, LedgerError> {
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let height = self.height()?;
        let hash = read_lock(&self.blocks).check_extends(&block)?;
        let number = height;

        let started = std::time::Instant::now();
        let envelopes = weft_protoutil::block_envelopes(&block);
        let checked = check_block(envelopes, &self.channel_id, validator);
        let mut updates = Updates::new(self);
        let mut outcomes = Vec::with_capacity(checked.len());
        let mut seen_in_block = HashSet::new();
        let mut written = BTreeSet::new();
        let mut missing_private_data = Vec::new();
        let mut stored_private = Vec::new();
        for (tx_number, result) in checked.into_iter().enumerate() {
            let version = Version::new(number, tx_number as u64);
            // A storage failure stops the commit: turned into a verdict, it
            // would make this peer's ledger differ from the others'.
            let result = match result {
                Ok(checked) => {
                    match self.check_stateful(&updates, &checked, validator, &mut seen_in_block) {
                        Ok(()) => Ok(checked),
                        Err(Refusal::Invalid(invalid)) => Err(invalid),
                        Err(Refusal::Storage(error)) => return Err(error),
                    }
                }
                Err(invalid) => Err(invalid),
            };
            match result {
                Ok(checked) => {
                    if let Some(action) = &checked.transaction.action {
                        written.extend(
                            action
                                .rwsets
                                .iter()
                                .filter(|ns| {
                                    !ns.rwset.writes.is_empty()
                                        || !ns.rwset.metadata_writes.is_empty()
                                })
                                .map(|ns| ns.namespace.clone()),
                        );
                    }
                    let offered = private.get(checked.transaction.tx_id());
                    let (private_writes, missing) = private::verify(&checked.transaction, offered);
                    missing_private_data.extend(missing);
                    if !private_writes.is_empty() {
                        stored_private.push((
                            private::stored_key(number, tx_number as u64),
                            private::encode_stored(&private_writes),
                        ));
                    }
                    updates.apply(&checked.transaction, version, &private_writes)?;
                    updates.record_tx_id(
                        checked.transaction.tx_id(),
                        version,
                        TxValidationCode::Valid,
                    );
                    outcomes.push(TxOutcome {
                        tx_id: checked.transaction.tx_id().to_string(),
                        header_type: checked.transaction.channel_header.r#type,
                        chaincode: checked
                            .transaction
                            .action
                            .as_ref()
                            .map(|a| a.chaincode_id.name.clone())
                            .unwrap_or_default(),
                        code: TxValidationCode::Valid,
                        reason: None,
                    });
                }
                Err(invalid) => {
                    let parsed = parse_envelope(&envelopes[tx_number]).ok();
                    let tx_id = parsed
                        .as_ref()
                        .map(|tx| tx.tx_id().to_string())
                        .unwrap_or_default();
                    if invalid.code != TxValidationCode::DuplicateTxid {
                        updates.record_tx_id(&tx_id, version, invalid.code);
                    }
                    outcomes.push(TxOutcome {
                        tx_id,
                        header_type: parsed.as_ref().map_or(-1, |tx| tx.channel_header.r#type),
                        chaincode: parsed
                            .and_then(|tx| tx.action.map(|a| a.chaincode_id.name))
                            .unwrap_or_default(),
                        code: invalid.code,
                        reason: Some(invalid.reason),
                    });
                }
            }
        }

        let filter: Vec<u8> = outcomes
            .iter()
            .map(|outcome| outcome.code as i32 as u8)
            .collect();
        let metadata = block.metadata.get_or_insert_with(BlockMetadata::default);
        let slot = MetadataSlot::TransactionsFilter as usize;
        if metadata.metadata.len() <= slot {
            metadata.metadata.resize(slot + 1, Vec::new());
        }
        metadata.metadata[slot] = filter;

        let validation = started.elapsed();
        let started = std::time::Instant::now();
        // Private data first: re-applying the block after a crash needs it.
        // Entries left for this block number by an earlier attempt that
        // crashed before its block was appended are replaced. Blocks without
        // private data cost one prefix lookup, no write.
        let stale: Vec<_> = self
            .keyspaces
            .private_data
            .prefix(number.to_be_bytes())
            .map(|entry| entry.key())
            .collect::<Result<_, _>>()?;
        if !stale.is_empty() || !stored_private.is_empty() {
            let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
            for key in stale {
                batch.remove(&self.keyspaces.private_data, key);
            }
            for (key, value) in stored_private {
                batch.insert(&self.keyspaces.private_data, key, value);
            }
            batch.commit()?;
        }

        write_lock(&self.blocks).append_checked(&block, hash)?;
        let block_storage = started.elapsed();
        let started = std::time::Instant::now();
        updates.persist(number)?;
        Ok(CommitOutcome {
            number,
            transactions: outcomes,
            written,
            missing_private_data,
            timings: CommitTimings {
                validation,
                block_storage,
                state: started.elapsed(),
            },
        })
    }
}
