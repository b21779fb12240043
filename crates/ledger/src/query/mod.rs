//! Rich queries over JSON values: CouchDB's Mango query language as
//! chaincode uses it through `GetQueryResult`, with secondary indexes.

pub mod collate;
pub mod index;
pub mod selector;

use serde_json::Value;

pub use index::{IndexDefinition, IndexScan};
pub use selector::{FieldPath, Operator, Selector};

/// A query that cannot be run, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query is not valid JSON: {0}")]
    Json(String),
    #[error("selector: {0}")]
    Selector(String),
    #[error("{0}")]
    Query(String),
    #[error("index definition: {0}")]
    Index(String),
    #[error("bookmark {0:?} was not issued by this query")]
    Bookmark(String),
    #[error(
        "sorting needs every match in memory and more than {limit} documents match; \
         narrow the selector or add an index"
    )]
    TooManyResults { limit: usize },
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortField {
    pub field: FieldPath,
    pub descending: bool,
}

/// A parsed Mango query.
#[derive(Debug, Clone)]
pub struct Query {
    pub selector: Selector,
    pub sort: Vec<SortField>,
    pub limit: Option<usize>,
    pub skip: usize,
    pub fields: Option<Vec<FieldPath>>,
    /// `use_index`: a design document, optionally with an index name.
    pub use_index: Option<(String, Option<String>)>,
    /// A bookmark given inside the query text (as CouchDB accepts).
    pub bookmark: Option<String>,
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let value: Value =
            serde_json::from_str(text).map_err(|error| QueryError::Json(error.to_string()))?;
        let Value::Object(map) = value else {
            return Err(QueryError::Query("a query must be a JSON object".into()));
        };
        let mut query = Query {
            selector: Selector::And(Vec::new()),
            sort: Vec::new(),
            limit: None,
            skip: 0,
            fields: None,
            use_index: None,
            bookmark: None,
        };
        let mut has_selector = false;
        for (key, value) in &map {
            let count = |name: &str| {
                value.as_u64().map(|n| n as usize).ok_or_else(|| {
                    QueryError::Query(format!("{name} must be a non-negative integer"))
                })
            };
            match key.as_str() {
                "selector" => {
                    query.selector = Selector::parse(value)?;
                    has_selector = true;
                }
                "sort" => query.sort = parse_sort(value)?,
                "limit" => query.limit = Some(count("limit")?),
                "skip" => query.skip = count("skip")?,
                "fields" => {
                    let fields = value
                        .as_array()
                        .ok_or_else(|| QueryError::Query("fields must be an array".into()))?;
                    query.fields = Some(
                        fields
                            .iter()
                            .map(|field| {
                                field
                                    .as_str()
                                    .ok_or_else(|| {
                                        QueryError::Query(format!("field {field} is not a name"))
                                    })
                                    .and_then(selector::parse_field_path)
                            })
                            .collect::<Result<_, _>>()?,
                    );
                }
                "use_index" => {
                    query.use_index = Some(match value {
                        Value::String(ddoc) => (ddoc.clone(), None),
                        Value::Array(parts) => match parts.as_slice() {
                            [Value::String(ddoc)] => (ddoc.clone(), None),
                            [Value::String(ddoc), Value::String(name)] => {
                                (ddoc.clone(), Some(name.clone()))
                            }
                            _ => {
                                return Err(QueryError::Query(
                                    "use_index must be \"ddoc\" or [\"ddoc\", \"name\"]".into(),
                                ));
                            }
                        },
                        _ => {
                            return Err(QueryError::Query(
                                "use_index must be \"ddoc\" or [\"ddoc\", \"name\"]".into(),
                            ));
                        }
                    })
                }
                "bookmark" => {
                    query.bookmark = value.as_str().map(str::to_string).filter(|b| !b.is_empty())
                }
                // Accepted by CouchDB, no meaning here.
                "r" | "conflicts" | "update" | "stable" | "execution_stats" => {}
                other => return Err(QueryError::Query(format!("unknown query field {other:?}"))),
            }
        }
        if !has_selector {
            return Err(QueryError::Query("the query has no \"selector\"".into()));
        }
        Ok(query)
    }

    /// Keeps only the requested fields of a document.
    pub fn project(&self, doc: Value) -> Value {
        let Some(fields) = &self.fields else {
            return doc;
        };
        let mut out = Value::Object(serde_json::Map::new());
        for field in fields {
            if let Some(value) = selector::lookup(&doc, field) {
                insert_path(&mut out, field, value.clone());
            }
        }
        out
    }

    /// Orders two documents by the sort fields (missing fields first, as null).
    pub fn sort_order(&self, a: &Value, b: &Value) -> std::cmp::Ordering {
        for sort in &self.sort {
            let left = selector::lookup(a, &sort.field).unwrap_or(&Value::Null);
            let right = selector::lookup(b, &sort.field).unwrap_or(&Value::Null);
            let order = collate::compare(left, right);
            let order = if sort.descending {
                order.reverse()
            } else {
                order
            };
            if order.is_ne() {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    }
}

fn insert_path(out: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = out;
    for part in parents {
        let Value::Object(map) = current else { return };
        current = map
            .entry(part.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    if let Value::Object(map) = current {
        map.insert(last.clone(), value);
    }
}

fn parse_sort(value: &Value) -> Result<Vec<SortField>, QueryError> {
    let items = value
        .as_array()
        .ok_or_else(|| QueryError::Query("sort must be an array".into()))?;
    items
        .iter()
        .map(|item| match item {
            Value::String(field) => Ok(SortField {
                field: selector::parse_field_path(field)?,
                descending: false,
            }),
            Value::Object(map) if map.len() == 1 => {
                let (field, direction) = map.iter().next().expect("one entry");
                let descending = match direction.as_str() {
                    Some("asc") => false,
                    Some("desc") => true,
                    _ => {
                        return Err(QueryError::Query(format!(
                            "sort direction of {field:?} must be \"asc\" or \"desc\""
                        )));
                    }
                };
                Ok(SortField {
                    field: selector::parse_field_path(field)?,
                    descending,
                })
            }
            other => Err(QueryError::Query(format!(
                "sort entry {other} is not a field"
            ))),
        })
        .collect()
}
