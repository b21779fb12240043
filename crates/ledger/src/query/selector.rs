//! CouchDB Mango selectors: parsing and matching JSON documents.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::QueryError;
use super::collate::compare;

/// A dotted field path, e.g. `owner.name` → `["owner", "name"]`.
pub type FieldPath = Vec<String>;

/// Splits `a.b\.c` into `["a", "b.c"]`.
pub fn parse_field_path(text: &str) -> Result<FieldPath, QueryError> {
    let mut path = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => current.push(escaped),
                None => return Err(QueryError::Selector(format!("field {text:?} ends in '\\'"))),
            },
            '.' => path.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    path.push(current);
    if path.iter().any(String::is_empty) {
        return Err(QueryError::Selector(format!(
            "field {text:?} has an empty part"
        )));
    }
    Ok(path)
}

/// The value at `path` in `doc`, descending through objects (and arrays by index).
pub fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    for part in path {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A condition on one field's value.
#[derive(Debug, Clone)]
pub enum Operator {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Regex(regex_lite::Regex),
    Size(u64),
    All(Vec<Value>),
    Type(String),
}

/// A parsed selector.
#[derive(Debug, Clone)]
pub enum Selector {
    And(Vec<Selector>),
    Or(Vec<Selector>),
    Nor(Vec<Selector>),
    Not(Box<Selector>),
    Field(FieldPath, Operator),
}

impl Selector {
    /// Parses a `selector` object.
    pub fn parse(value: &Value) -> Result<Selector, QueryError> {
        match value {
            Value::Object(map) => parse_object(map, &[]),
            other => Err(QueryError::Selector(format!(
                "a selector must be a JSON object, not {other}"
            ))),
        }
    }

    /// Whether `doc` matches, with CouchDB's semantics: a condition on a
    /// missing field fails, except `$exists: false`.
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Selector::And(all) => all.iter().all(|selector| selector.matches(doc)),
            Selector::Or(any) => any.iter().any(|selector| selector.matches(doc)),
            Selector::Nor(none) => !none.iter().any(|selector| selector.matches(doc)),
            Selector::Not(inner) => !inner.matches(doc),
            Selector::Field(path, operator) => match lookup(doc, path) {
                None => matches!(operator, Operator::Exists(false)),
                Some(value) => operator.matches(value),
            },
        }
    }

    /// The top-level conjuncts: what every matching document satisfies.
    pub fn conjuncts(&self) -> Vec<&Selector> {
        match self {
            Selector::And(all) => all.iter().flat_map(Selector::conjuncts).collect(),
            other => vec![other],
        }
    }
}

impl Operator {
    fn matches(&self, value: &Value) -> bool {
        let equal = |a: &Value, b: &Value| compare(a, b) == Ordering::Equal;
        let member = |args: &[Value]| match value {
            Value::Array(items) => args
                .iter()
                .any(|arg| items.iter().any(|item| equal(item, arg))),
            _ => args.iter().any(|arg| equal(value, arg)),
        };
        match self {
            Operator::Eq(arg) => equal(value, arg),
            Operator::Ne(arg) => !equal(value, arg),
            Operator::Gt(arg) => compare(value, arg) == Ordering::Greater,
            Operator::Gte(arg) => compare(value, arg) != Ordering::Less,
            Operator::Lt(arg) => compare(value, arg) == Ordering::Less,
            Operator::Lte(arg) => compare(value, arg) != Ordering::Greater,
            Operator::In(args) => member(args),
            Operator::Nin(args) => !member(args),
            Operator::Exists(expected) => *expected,
            Operator::Regex(regex) => value.as_str().is_some_and(|text| regex.is_match(text)),
            Operator::Size(size) => value
                .as_array()
                .is_some_and(|items| items.len() as u64 == *size),
            Operator::All(args) => value.as_array().is_some_and(|items| {
                args.iter()
                    .all(|arg| items.iter().any(|item| equal(item, arg)))
            }),
            Operator::Type(name) => type_name(value) == name,
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn and(mut parts: Vec<Selector>) -> Selector {
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Selector::And(parts)
    }
}

fn parse_object(map: &Map<String, Value>, path: &[String]) -> Result<Selector, QueryError> {
    if map.is_empty() {
        return Ok(if path.is_empty() {
            Selector::And(Vec::new())
        } else {
            Selector::Field(path.to_vec(), Operator::Eq(Value::Object(Map::new())))
        });
    }
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        parts.push(if let Some(operator) = key.strip_prefix('$') {
            parse_operator(operator, value, path)?
        } else {
            let mut field = path.to_vec();
            field.extend(parse_field_path(key)?);
            match value {
                Value::Object(inner) => parse_object(inner, &field)?,
                literal => Selector::Field(field, Operator::Eq(literal.clone())),
            }
        });
    }
    Ok(and(parts))
}

fn selector_list(name: &str, value: &Value, path: &[String]) -> Result<Vec<Selector>, QueryError> {
    let items = value
        .as_array()
        .filter(|items| !items.is_empty())
        .ok_or_else(|| QueryError::Selector(format!("${name} takes a non-empty array")))?;
    items
        .iter()
        .map(|item| match item {
            Value::Object(map) => parse_object(map, path),
            other => Err(QueryError::Selector(format!(
                "${name} takes selectors (objects), not {other}"
            ))),
        })
        .collect()
}

fn parse_operator(name: &str, value: &Value, path: &[String]) -> Result<Selector, QueryError> {
    match name {
        "and" => return Ok(Selector::And(selector_list(name, value, path)?)),
        "or" => return Ok(Selector::Or(selector_list(name, value, path)?)),
        "nor" => return Ok(Selector::Nor(selector_list(name, value, path)?)),
        "not" => {
            let Value::Object(map) = value else {
                return Err(QueryError::Selector(
                    "$not takes a selector (object)".into(),
                ));
            };
            return Ok(Selector::Not(Box::new(parse_object(map, path)?)));
        }
        _ => {}
    }
    if path.is_empty() {
        return Err(QueryError::Selector(format!(
            "${name} must be applied to a field, e.g. {{\"owner\": {{\"${name}\": …}}}}"
        )));
    }
    let array = || {
        value
            .as_array()
            .cloned()
            .ok_or_else(|| QueryError::Selector(format!("${name} takes an array")))
    };
    let operator = match name {
        "eq" => Operator::Eq(value.clone()),
        "ne" => Operator::Ne(value.clone()),
        "gt" => Operator::Gt(value.clone()),
        "gte" => Operator::Gte(value.clone()),
        "lt" => Operator::Lt(value.clone()),
        "lte" => Operator::Lte(value.clone()),
        "in" => Operator::In(array()?),
        "nin" => Operator::Nin(array()?),
        "all" => Operator::All(array()?),
        "exists" => Operator::Exists(
            value
                .as_bool()
                .ok_or_else(|| QueryError::Selector("$exists takes true or false".into()))?,
        ),
        "regex" => {
            let pattern = value
                .as_str()
                .ok_or_else(|| QueryError::Selector("$regex takes a string".into()))?;
            Operator::Regex(
                regex_lite::Regex::new(pattern).map_err(|error| {
                    QueryError::Selector(format!("$regex {pattern:?}: {error}"))
                })?,
            )
        }
        "size" => Operator::Size(
            value
                .as_u64()
                .ok_or_else(|| QueryError::Selector("$size takes a non-negative integer".into()))?,
        ),
        "type" => {
            let type_name = value.as_str().unwrap_or_default();
            if !["null", "boolean", "number", "string", "array", "object"].contains(&type_name) {
                return Err(QueryError::Selector(format!(
                    "$type takes null, boolean, number, string, array or object, not {value}"
                )));
            }
            Operator::Type(type_name.into())
        }
        other => {
            return Err(QueryError::Selector(format!(
                "unsupported operator ${other} (weft supports $eq $ne $gt $gte $lt $lte $in $nin \
                 $exists $regex $size $all $type $and $or $nor $not)"
            )));
        }
    };
    Ok(Selector::Field(path.to_vec(), operator))
}
