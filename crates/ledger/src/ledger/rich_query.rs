//! CouchDB-style rich queries over JSON values: index definitions and
//! Mango selectors.

use super::*;

impl Ledger {
    /// Declares a JSON index in `namespace` (Fabric's
    /// `META-INF/statedb/couchdb/indexes/*.json`) and builds it over the
    /// current state. Re-declaring an index with the same name replaces it.
    pub fn define_index(
        &self,
        namespace: &str,
        definition: &str,
    ) -> Result<IndexDefinition, LedgerError> {
        check_namespace(namespace)?;
        let definition =
            IndexDefinition::parse(definition).map_err(|error| LedgerError::InvalidIndex {
                namespace: namespace.into(),
                name: String::new(),
                reason: error.to_string(),
            })?;
        let _commit = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let existing = read_lock(&self.indexes)
            .get(namespace)
            .and_then(|defined| defined.iter().find(|d| d.name == definition.name).cloned());
        if existing
            .as_ref()
            .is_some_and(|existing| existing.fields == definition.fields)
        {
            return Ok(definition);
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        if let Some(existing) = &existing {
            for entry in self.keyspaces.index.prefix(existing.prefix(namespace)) {
                batch.remove(&self.keyspaces.index, entry.key()?);
            }
        }
        let prefix_length = namespace.len() + 1;
        for entry in self.keyspaces.state.prefix(namespace_prefix(namespace)) {
            let (key, bytes) = entry.into_inner()?;
            let value =
                decode_value(&bytes).map_err(|reason| corrupt(&self.dir.join("state"), reason))?;
            if let Some(doc) = json_document(&value.value)
                && let Some(entry) = definition.entry(namespace, &key[prefix_length..], &doc)
            {
                batch.insert(&self.keyspaces.index, entry, &key[prefix_length..]);
            }
        }
        let mut definition_key = namespace.as_bytes().to_vec();
        definition_key.push(0);
        definition_key.extend_from_slice(definition.name.as_bytes());
        batch.insert(
            &self.keyspaces.index_definitions,
            definition_key,
            definition.source.as_bytes(),
        );
        batch.commit()?;
        let mut indexes = write_lock(&self.indexes);
        let defined = indexes.entry(namespace.to_string()).or_default();
        defined.retain(|d| d.name != definition.name);
        defined.push(definition.clone());
        Ok(definition)
    }

    /// The indexes declared in `namespace`.
    pub fn indexes(&self, namespace: &str) -> Vec<IndexDefinition> {
        read_lock(&self.indexes)
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Runs a Mango query (`GetQueryResult`) over the JSON values of `namespace`,
    /// through an index when one can answer it.
    pub fn get_query_result(
        &self,
        namespace: &str,
        query: &str,
        page: Option<&Page>,
    ) -> Result<QueryPage, LedgerError> {
        check_namespace(namespace)?;
        let query = Query::parse(query)?;
        let bookmark = page
            .map(|page| page.bookmark.clone())
            .filter(|bookmark| !bookmark.is_empty())
            .or_else(|| query.bookmark.clone());
        let limit = page
            .map(|page| page.size)
            .filter(|size| *size > 0)
            .or(query.limit)
            .unwrap_or(self.config.total_query_limit)
            .min(self.config.total_query_limit);

        let indexes = self.indexes(namespace);
        let named = query.use_index.as_ref().and_then(|(ddoc, name)| {
            indexes
                .iter()
                .find(|index| index.is_named(ddoc, name.as_deref()))
        });
        let chosen = named
            .and_then(|index| {
                index
                    .plan(namespace, &query.selector)
                    .map(|scan| (index, scan))
            })
            .or_else(|| {
                indexes
                    .iter()
                    .filter_map(|index| {
                        index
                            .plan(namespace, &query.selector)
                            .map(|scan| (index, scan))
                    })
                    .max_by_key(|(index, scan)| {
                        (scan.equalities, std::cmp::Reverse(index.fields.len()))
                    })
            });

        // Candidates in a stable order, each with the position to resume after it.
        let (lower, upper, keyspace) = match &chosen {
            Some((_, scan)) => (
                scan.lower.clone(),
                scan.upper.clone(),
                &self.keyspaces.index,
            ),
            None => {
                let (lower, upper) = Self::state_bounds(namespace, "", "");
                (lower, upper, &self.keyspaces.state)
            }
        };
        let sorted = !query.sort.is_empty();
        let mut skip = query.skip;
        let mut lower = lower;
        let mut offset = 0usize;
        if let Some(bookmark) = &bookmark {
            let invalid = || LedgerError::Query(QueryError::Bookmark(bookmark.clone()));
            if sorted {
                offset = bookmark
                    .strip_prefix('o')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(invalid)?;
            } else {
                let position = bookmark
                    .strip_prefix('k')
                    .and_then(unhex)
                    .ok_or_else(invalid)?;
                lower = Bound::Excluded(position);
            }
            skip = 0;
        }

        let prefix_length = namespace.len() + 1;
        let mut docs_examined = 0u64;
        let mut matches: Vec<(String, Vec<u8>, Value)> = Vec::new();
        let mut next_bookmark = String::new();
        for entry in keyspace.range((lower, upper)) {
            let (position, stored) = entry.into_inner()?;
            docs_examined += 1;
            let (key, value) = if chosen.is_some() {
                match self.read_state(&state_key(namespace, &stored))? {
                    Some(value) => (stored.to_vec(), value.value),
                    None => continue,
                }
            } else {
                let value = decode_value(&stored)
                    .map_err(|reason| corrupt(&self.dir.join("state"), reason))?;
                (position[prefix_length..].to_vec(), value.value)
            };
            let Some(doc) = json_document(&value) else {
                continue;
            };
            if !query.selector.matches(&doc) {
                continue;
            }
            if sorted {
                if matches.len() >= self.config.total_query_limit {
                    return Err(QueryError::TooManyResults {
                        limit: self.config.total_query_limit,
                    }
                    .into());
                }
            } else {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if matches.len() == limit {
                    break;
                }
            }
            matches.push((key_string(&key), value, doc));
            if !sorted && matches.len() == limit {
                next_bookmark = format!("k{}", hex(&position));
            }
        }

        if sorted {
            matches.sort_by(|a, b| query.sort_order(&a.2, &b.2).then_with(|| a.0.cmp(&b.0)));
            let start = offset.max(skip).min(matches.len());
            let end = start.saturating_add(limit).min(matches.len());
            if end < matches.len() {
                next_bookmark = format!("o{end}");
            }
            matches = matches.drain(start..end).collect();
        }
        let results = matches
            .into_iter()
            .map(|(key, value, doc)| {
                let value = if query.fields.is_some() {
                    query.project(doc).to_string().into_bytes()
                } else {
                    value
                };
                (key, value)
            })
            .collect();
        Ok(QueryPage {
            results,
            bookmark: next_bookmark,
            index: chosen.map(|(index, _)| index.name.clone()),
            docs_examined,
        })
    }
}
