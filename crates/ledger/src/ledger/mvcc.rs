//! The stateful checks of one transaction in block order: duplicate tx
//! ids, endorsement policies (chaincode, namespaces, keys, collections,
//! organisation-owned keys), BAD_RWSET and MVCC. A storage failure is a
//! `Refusal::Storage`, which stops the commit; it is never a verdict.

use super::*;

impl Ledger {
    /// Duplicate tx id, endorsement policies (chaincode and key-level), MVCC.
    pub(super) fn check_stateful(
        &self,
        updates: &Updates<'_>,
        checked: &Checked,
        validator: &Validator<'_>,
        seen_in_block: &mut HashSet<String>,
    ) -> Result<(), Refusal> {
        let transaction = &checked.transaction;
        let tx_id = transaction.tx_id();
        let storage = Refusal::Storage;
        if !tx_id.is_empty() {
            let committed = self
                .keyspaces
                .txids
                .contains_key(tx_id.as_bytes())
                .map_err(|e| storage(e.into()))?;
            if committed || !seen_in_block.insert(tx_id.to_string()) {
                return Err(Invalid::new(
                    TxValidationCode::DuplicateTxid,
                    format!("tx id {tx_id} was already used"),
                )
                .into());
            }
        }
        let Some(action) = &transaction.action else {
            return Ok(());
        };
        for rwset in &action.rwsets {
            for collection in &rwset.collections {
                let mut hashes = HashSet::new();
                if collection
                    .hashed
                    .hashed_writes
                    .iter()
                    .any(|write| !hashes.insert(write.key_hash.as_slice()))
                {
                    return Err(Invalid::new(
                        TxValidationCode::BadRwset,
                        format!(
                            "a key of collection {} in {} is written twice",
                            collection.name, rwset.namespace
                        ),
                    )
                    .into());
                }
            }
            let mut keys = HashSet::with_capacity(rwset.rwset.writes.len());
            if let Some(write) = rwset
                .rwset
                .writes
                .iter()
                .find(|write| !keys.insert(write.key.as_str()))
            {
                return Err(Invalid::new(
                    TxValidationCode::BadRwset,
                    format!(
                        "key {:?} in {} is written twice",
                        write.key, rwset.namespace
                    ),
                )
                .into());
            }
        }

        // Endorsement policies: the invoked chaincode always, and every namespace written.
        let mut namespaces: BTreeMap<&str, bool> = BTreeMap::new();
        namespaces.insert(&action.chaincode_id.name, false);
        for rwset in &action.rwsets {
            let writes = !rwset.rwset.writes.is_empty() || !rwset.rwset.metadata_writes.is_empty();
            *namespaces.entry(&rwset.namespace).or_default() |= writes;
        }
        for (namespace, _) in namespaces {
            let written: Vec<&str> = action
                .rwsets
                .iter()
                .filter(|rwset| rwset.namespace == namespace)
                .flat_map(|rwset| {
                    let writes = rwset.rwset.writes.iter().map(|write| write.key.as_str());
                    let metadata = rwset
                        .rwset
                        .metadata_writes
                        .iter()
                        .map(|write| write.key.as_str());
                    writes.chain(metadata)
                })
                .collect();
            // Collection writes need the collection's endorsement policy, or
            // the chaincode's when the collection has none.
            let mut needs_chaincode_policy = written.is_empty();
            for collection in action
                .rwsets
                .iter()
                .filter(|rwset| rwset.namespace == namespace)
                .flat_map(|rwset| &rwset.collections)
                .filter(|c| !c.hashed.hashed_writes.is_empty())
            {
                match validator
                    .policies
                    .collection_policy(namespace, &collection.name)
                {
                    CollectionPolicy::Chaincode => needs_chaincode_policy = true,
                    CollectionPolicy::Collection(policy) => {
                        policy.evaluate(&checked.endorsers).map_err(|error| {
                            Invalid::new(
                                TxValidationCode::EndorsementPolicyFailure,
                                format!(
                                    "collection {} of {namespace}: endorsement policy {policy} not satisfied: {error}",
                                    collection.name
                                ),
                            )
                        })?;
                    }
                    CollectionPolicy::Undefined => {
                        return Err(Invalid::new(
                            TxValidationCode::EndorsementPolicyFailure,
                            format!(
                                "collection {} is not defined for chaincode {namespace}",
                                collection.name
                            ),
                        )
                        .into());
                    }
                }
            }
            for key in written {
                let current = updates
                    .current(namespace, key.as_bytes())
                    .map_err(storage)?;
                match current
                    .as_ref()
                    .and_then(VersionedValue::validation_parameter)
                {
                    Some(parameter) => {
                        let policy = SignaturePolicyEnvelope::decode(parameter)
                            .map_err(|error| error.to_string())
                            .and_then(|envelope| {
                                SignaturePolicy::from_envelope(&envelope).map_err(|e| e.to_string())
                            })
                            .map_err(|reason| {
                                Invalid::new(
                                    TxValidationCode::EndorsementPolicyFailure,
                                    format!("key {key:?} in {namespace}: its key-level policy is malformed: {reason}"),
                                )
                            })?;
                        policy.evaluate(&checked.endorsers).map_err(|error| {
                            Invalid::new(
                                TxValidationCode::EndorsementPolicyFailure,
                                format!("key {key:?} in {namespace}: key-level policy {policy} not satisfied: {error}"),
                            )
                        })?;
                    }
                    None => match validator.policies.owner_policy(namespace, key) {
                        Ok(Some(policy)) => {
                            policy.evaluate(&checked.endorsers).map_err(|error| {
                                Invalid::new(
                                    TxValidationCode::EndorsementPolicyFailure,
                                    format!("key {key:?} in {namespace} belongs to an organisation: {policy} not satisfied: {error}"),
                                )
                            })?;
                        }
                        Ok(None) => needs_chaincode_policy = true,
                        Err(reason) => {
                            return Err(Invalid::new(
                                TxValidationCode::EndorsementPolicyFailure,
                                format!("in {namespace}: {reason}"),
                            )
                            .into());
                        }
                    },
                }
            }
            if needs_chaincode_policy {
                let policy = validator.policies.get(namespace).ok_or_else(|| {
                    Invalid::new(
                        TxValidationCode::InvalidChaincode,
                        format!(
                            "chaincode {namespace} is not defined on channel {}",
                            self.channel_id
                        ),
                    )
                })?;
                policy.evaluate(&checked.endorsers).map_err(|error| {
                    Invalid::new(
                        TxValidationCode::EndorsementPolicyFailure,
                        format!(
                            "chaincode {namespace}: endorsement policy {policy} not satisfied by {} valid endorsement(s): {error}",
                            checked.endorsers.len()
                        ),
                    )
                })?;
            }
        }

        // MVCC in block order: every read still current, every range unchanged.
        for rwset in &action.rwsets {
            let namespace = rwset.namespace.as_str();
            // A read is valid while the key is still at the version read.
            let check = |state_namespace: &str,
                         key: &[u8],
                         version: Option<&weft_protos::kvrwset::Version>,
                         what: &dyn Fn() -> String|
             -> Result<(), Refusal> {
                let current = updates
                    .current(state_namespace, key)
                    .map_err(storage)?
                    .map(|value| value.version);
                let expected = version.map(|v| Version::new(v.block_num, v.tx_num));
                if current == expected {
                    return Ok(());
                }
                Err(Invalid::new(
                    TxValidationCode::MvccReadConflict,
                    format!(
                        "{} was read at version {} but is now at {}",
                        what(),
                        expected.map_or("(absent)".into(), |v| v.to_string()),
                        current.map_or("(absent)".into(), |v| v.to_string()),
                    ),
                )
                .into())
            };
            for read in &rwset.rwset.reads {
                check(
                    namespace,
                    read.key.as_bytes(),
                    read.version.as_ref(),
                    &|| format!("key {:?} in {namespace}", read.key),
                )?;
            }
            for collection in &rwset.collections {
                let hashed = hashed_namespace(namespace, &collection.name);
                for read in &collection.hashed.hashed_reads {
                    check(&hashed, &read.key_hash, read.version.as_ref(), &|| {
                        format!("a key of collection {} in {namespace}", collection.name)
                    })?;
                }
            }
            for range in &rwset.rwset.range_queries_info {
                updates
                    .check_range(namespace, range)
                    .map_err(|error| match error {
                        RangeCheck::Phantom(reason) => {
                            Invalid::new(TxValidationCode::PhantomReadConflict, reason).into()
                        }
                        RangeCheck::Unsupported(reason) => {
                            Invalid::new(TxValidationCode::InvalidOtherReason, reason).into()
                        }
                        RangeCheck::Storage(error) => storage(error),
                    })?;
            }
        }
        Ok(())
    }
}
