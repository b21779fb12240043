//! Secondary indexes declared like Fabric's
//! `META-INF/statedb/couchdb/indexes/*.json`, and how a selector uses one.
//!
//! An index entry is `namespace NUL index NUL enc(field 1) … enc(field n) key`
//! (value: the document key), with `enc` the collation-ordered encoding.
//! As in CouchDB, a document missing any indexed field is not indexed.

use std::ops::Bound;

use serde_json::Value;

use super::QueryError;
use super::collate::{encode, successor};
use super::selector::{FieldPath, Operator, Selector, lookup, parse_field_path};

/// A JSON index over one or more fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: String,
    pub design_doc: Option<String>,
    pub fields: Vec<FieldPath>,
    /// The definition as given, kept to export it in snapshots.
    pub source: String,
}

impl IndexDefinition {
    /// Parses `{"index": {"fields": [...]}, "ddoc": "...", "name": "...", "type": "json"}`.
    pub fn parse(text: &str) -> Result<IndexDefinition, QueryError> {
        let invalid = |reason: String| QueryError::Index(reason);
        let value: Value =
            serde_json::from_str(text).map_err(|error| invalid(format!("not JSON: {error}")))?;
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("json");
        if kind != "json" {
            return Err(invalid(format!(
                "type {kind:?}: only \"json\" indexes are supported"
            )));
        }
        let fields = value
            .get("index")
            .and_then(|index| index.get("fields"))
            .and_then(Value::as_array)
            .filter(|fields| !fields.is_empty())
            .ok_or_else(|| invalid("expected \"index\": {\"fields\": [...]} with fields".into()))?;
        let fields = fields
            .iter()
            .map(|field| {
                let name = match field {
                    Value::String(name) => name.as_str(),
                    Value::Object(map) if map.len() == 1 => {
                        let (name, direction) = map.iter().next().expect("one entry");
                        if !matches!(direction.as_str(), Some("asc" | "desc")) {
                            return Err(invalid(format!(
                                "field {name:?}: direction must be \"asc\" or \"desc\""
                            )));
                        }
                        name.as_str()
                    }
                    other => return Err(invalid(format!("field {other} is not a name"))),
                };
                parse_field_path(name)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let design_doc = value
            .get("ddoc")
            .and_then(Value::as_str)
            .map(|ddoc| ddoc.trim_start_matches("_design/").to_string());
        let name = match value.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => {
                let joined: Vec<String> = fields.iter().map(|path| path.join(".")).collect();
                format!("idx-{}", joined.join("-"))
            }
        };
        if name.contains('\0') {
            return Err(invalid("the index name contains a NUL byte".into()));
        }
        Ok(IndexDefinition {
            name,
            design_doc,
            fields,
            source: text.to_string(),
        })
    }

    /// The prefix all of this index's entries in `namespace` share.
    pub fn prefix(&self, namespace: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(namespace.len() + self.name.len() + 2);
        out.extend_from_slice(namespace.as_bytes());
        out.push(0);
        out.extend_from_slice(self.name.as_bytes());
        out.push(0);
        out
    }

    /// The index entry for `doc` under `key`, or `None` when a field is missing.
    pub fn entry(&self, namespace: &str, key: &[u8], doc: &Value) -> Option<Vec<u8>> {
        let mut out = self.prefix(namespace);
        for field in &self.fields {
            encode(&mut out, lookup(doc, field)?);
        }
        out.extend_from_slice(key);
        Some(out)
    }

    /// Whether `use_index` names this index (`"ddoc"` or `["ddoc", "name"]`).
    pub fn is_named(&self, design_doc: &str, name: Option<&str>) -> bool {
        let design_doc = design_doc.trim_start_matches("_design/");
        let ddoc_matches =
            self.design_doc.as_deref() == Some(design_doc) || self.name == design_doc;
        ddoc_matches && name.is_none_or(|name| name == self.name)
    }

    /// The range of index entries that can hold every match of `selector`,
    /// or `None` when this index cannot answer it (a field without a condition
    /// that implies the field exists).
    pub fn plan(&self, namespace: &str, selector: &Selector) -> Option<IndexScan> {
        let conjuncts = selector.conjuncts();
        let conditions = |field: &FieldPath| -> Vec<&Operator> {
            conjuncts
                .iter()
                .filter_map(|conjunct| match conjunct {
                    Selector::Field(path, operator) if path == field => Some(operator),
                    _ => None,
                })
                .collect()
        };
        let implies_existence = |operator: &&Operator| !matches!(operator, Operator::Exists(false));
        if !self
            .fields
            .iter()
            .all(|field| conditions(field).iter().any(implies_existence))
        {
            return None;
        }

        let mut prefix = self.prefix(namespace);
        let mut equalities = 0;
        let mut lower: Option<Bound<Vec<u8>>> = None;
        let mut upper: Option<Bound<Vec<u8>>> = None;
        for field in &self.fields {
            let operators = conditions(field);
            if let Some(Operator::Eq(value)) = operators
                .iter()
                .find(|operator| matches!(operator, Operator::Eq(_)))
            {
                encode(&mut prefix, value);
                equalities += 1;
                continue;
            }
            for operator in operators {
                let bound = |value: &Value| {
                    let mut key = prefix.clone();
                    encode(&mut key, value);
                    key
                };
                match operator {
                    Operator::Gt(value) => {
                        tighten_lower(&mut lower, successor(&bound(value)).map(Bound::Included))
                    }
                    Operator::Gte(value) => {
                        tighten_lower(&mut lower, Some(Bound::Included(bound(value))))
                    }
                    Operator::Lt(value) => {
                        tighten_upper(&mut upper, Some(Bound::Excluded(bound(value))))
                    }
                    Operator::Lte(value) => {
                        tighten_upper(&mut upper, successor(&bound(value)).map(Bound::Excluded))
                    }
                    _ => {}
                }
            }
            break;
        }
        let lower = lower.unwrap_or_else(|| Bound::Included(prefix.clone()));
        let upper = upper.unwrap_or_else(|| match successor(&prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        });
        Some(IndexScan {
            lower,
            upper,
            equalities,
        })
    }
}

fn key_of(bound: &Bound<Vec<u8>>) -> Option<&Vec<u8>> {
    match bound {
        Bound::Included(key) | Bound::Excluded(key) => Some(key),
        Bound::Unbounded => None,
    }
}

fn tighten_lower(current: &mut Option<Bound<Vec<u8>>>, candidate: Option<Bound<Vec<u8>>>) {
    let Some(candidate) = candidate else { return };
    let tighter = match current.as_ref().and_then(key_of) {
        None => true,
        Some(existing) => key_of(&candidate).is_some_and(|key| key > existing),
    };
    if tighter {
        *current = Some(candidate);
    }
}

fn tighten_upper(current: &mut Option<Bound<Vec<u8>>>, candidate: Option<Bound<Vec<u8>>>) {
    let Some(candidate) = candidate else { return };
    let tighter = match current.as_ref().and_then(key_of) {
        None => true,
        Some(existing) => key_of(&candidate).is_some_and(|key| key < existing),
    };
    if tighter {
        *current = Some(candidate);
    }
}

/// A range of index entries to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexScan {
    pub lower: Bound<Vec<u8>>,
    pub upper: Bound<Vec<u8>>,
    /// How many leading fields the selector fixes by equality (a better index fixes more).
    pub equalities: usize,
}
