//! Reads of committed blocks, transactions, state, private data, ranges
//! and history.

use super::*;

impl Ledger {
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    /// The number of the next block to commit.
    pub fn height(&self) -> Result<u64, LedgerError> {
        Ok(match self.savepoint()? {
            Some(number) => number + 1,
            None => read_lock(&self.blocks).first_number(),
        })
    }

    /// Header hash of the newest block.
    pub fn last_block_hash(&self) -> Vec<u8> {
        read_lock(&self.blocks).last_hash().to_vec()
    }

    /// The oldest block held (0 unless the ledger started from a snapshot).
    pub fn first_block_number(&self) -> u64 {
        read_lock(&self.blocks).first_number()
    }

    pub fn block(&self, number: u64) -> Result<Block, LedgerError> {
        if number >= self.height()? {
            return Err(LedgerError::NoSuchBlock(number));
        }
        read_lock(&self.blocks).block(number)
    }

    pub fn block_bytes(&self, number: u64) -> Result<Vec<u8>, LedgerError> {
        if number >= self.height()? {
            return Err(LedgerError::NoSuchBlock(number));
        }
        read_lock(&self.blocks).block_bytes(number)
    }

    /// Where transaction `tx_id` was committed, with its validation code.
    pub fn transaction(&self, tx_id: &str) -> Result<Option<TxLocation>, LedgerError> {
        let Some(bytes) = self.keyspaces.txids.get(tx_id.as_bytes())? else {
            return Ok(None);
        };
        if bytes.len() != 17 {
            return Err(corrupt(
                &self.dir.join("state"),
                format!("tx id record of {tx_id}"),
            ));
        }
        Ok(Some(TxLocation {
            block: u64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            tx: u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")),
            code: code_from_u8(bytes[16]),
        }))
    }

    /// The block holding transaction `tx_id`.
    pub fn block_by_tx_id(&self, tx_id: &str) -> Result<Option<Block>, LedgerError> {
        match self.transaction(tx_id)? {
            Some(location) => Ok(Some(self.block(location.block)?)),
            None => Ok(None),
        }
    }

    /// The committed value of `key` in `namespace`.
    pub fn get_state(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<VersionedValue>, LedgerError> {
        check_namespace(namespace)?;
        self.read_state(&state_key(namespace, key.as_bytes()))
    }

    /// A private value of `collection` in `chaincode`, as this peer
    /// committed it (absent when the peer never held it).
    pub fn get_private_data(
        &self,
        chaincode: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<VersionedValue>, LedgerError> {
        self.get_state(&private_namespace(chaincode, collection), key)
    }

    /// The committed hash of a private value (every peer has it): the value
    /// is the SHA-256 of the private value.
    pub fn get_private_data_hash(
        &self,
        chaincode: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<VersionedValue>, LedgerError> {
        let namespace = hashed_namespace(chaincode, collection);
        check_namespace(&namespace)?;
        self.read_state(&state_key(&namespace, &weft_crypto::sha256(key.as_bytes())))
    }

    /// The private read-write set this peer committed for a transaction.
    pub fn committed_private_data(
        &self,
        block: u64,
        tx: u64,
    ) -> Result<Option<TxPvtReadWriteSet>, LedgerError> {
        self.keyspaces
            .private_data
            .get(private::stored_key(block, tx))?
            .map(|bytes| TxPvtReadWriteSet::decode(bytes.as_ref()))
            .transpose()
            .map_err(|error| corrupt(&self.dir.join("state"), error.to_string()))
    }

    pub(crate) fn read_state(
        &self,
        state_key: &[u8],
    ) -> Result<Option<VersionedValue>, LedgerError> {
        match self.keyspaces.state.get(state_key)? {
            None => Ok(None),
            Some(bytes) => decode_value(&bytes)
                .map(Some)
                .map_err(|reason| corrupt(&self.dir.join("state"), reason)),
        }
    }

    pub(super) fn state_bounds(
        namespace: &str,
        start: &str,
        end: &str,
    ) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let prefix = namespace_prefix(namespace);
        let lower = Bound::Included(state_key(namespace, start.as_bytes()));
        let upper = if end.is_empty() {
            successor(&prefix).map_or(Bound::Unbounded, Bound::Excluded)
        } else {
            Bound::Excluded(state_key(namespace, end.as_bytes()))
        };
        (lower, upper)
    }

    /// Keys in `[start, end)` of `namespace` in key order (`end` empty: to the end),
    /// a page at a time when `page` is given (bookmark: the key to resume at).
    pub fn get_state_range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
        page: Option<&Page>,
    ) -> Result<RangePage, LedgerError> {
        check_namespace(namespace)?;
        let start = match page {
            Some(page) if !page.bookmark.is_empty() => page.bookmark.as_str(),
            _ => start,
        };
        let limit = page
            .map(|page| page.size)
            .filter(|size| *size > 0)
            .unwrap_or(self.config.total_query_limit)
            .min(self.config.total_query_limit);
        let prefix_length = namespace.len() + 1;
        let mut results = Vec::new();
        let mut bookmark = String::new();
        if !end.is_empty() && start >= end {
            return Ok(RangePage { results, bookmark });
        }
        for entry in self
            .keyspaces
            .state
            .range(Self::state_bounds(namespace, start, end))
        {
            let (key, value) = entry.into_inner()?;
            let key = key_string(&key[prefix_length..]);
            if results.len() == limit {
                bookmark = key;
                break;
            }
            let value =
                decode_value(&value).map_err(|reason| corrupt(&self.dir.join("state"), reason))?;
            results.push((key, value));
        }
        Ok(RangePage { results, bookmark })
    }

    /// Every committed write of `key` in `namespace`, in commit order.
    pub fn get_history_for_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        check_namespace(namespace)?;
        let mut entries = Vec::new();
        for entry in self
            .keyspaces
            .history
            .prefix(history::key_prefix(namespace, key.as_bytes()))
        {
            let (entry_key, bytes) = entry.into_inner()?;
            entries.push(
                history::decode_entry(&entry_key, &bytes)
                    .map_err(|reason| corrupt(&self.dir.join("state"), reason))?,
            );
        }
        Ok(entries)
    }
}
