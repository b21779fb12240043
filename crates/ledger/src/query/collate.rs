//! CouchDB's collation of JSON values, and a byte encoding that sorts the
//! same way, so index ranges and selector comparisons agree.
//!
//! Order: null < false < true < numbers < strings < arrays < objects.
//! Strings compare by Unicode code point (CouchDB uses ICU collation; code
//! point order is the documented difference). Numbers compare as f64.

use std::cmp::Ordering;

use serde_json::Value;

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 1,
        Value::Bool(false) => 2,
        Value::Bool(true) => 3,
        Value::Number(_) => 4,
        Value::String(_) => 5,
        Value::Array(_) => 6,
        Value::Object(_) => 7,
    }
}

fn number(value: &serde_json::Number) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// Compares two JSON values in CouchDB's collation order.
pub fn compare(left: &Value, right: &Value) -> Ordering {
    match (left, right) {
        // JSON has no NaN, so numbers are totally ordered; -0.0 equals 0.0.
        (Value::Number(a), Value::Number(b)) => {
            number(a).partial_cmp(&number(b)).unwrap_or(Ordering::Equal)
        }
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Array(a), Value::Array(b)) => {
            for (x, y) in a.iter().zip(b) {
                match compare(x, y) {
                    Ordering::Equal => continue,
                    other => return other,
                }
            }
            a.len().cmp(&b.len())
        }
        (Value::Object(a), Value::Object(b)) => {
            for ((key_a, value_a), (key_b, value_b)) in a.iter().zip(b) {
                match key_a.cmp(key_b).then_with(|| compare(value_a, value_b)) {
                    Ordering::Equal => continue,
                    other => return other,
                }
            }
            a.len().cmp(&b.len())
        }
        _ => rank(left).cmp(&rank(right)),
    }
}

fn number_bytes(value: f64) -> [u8; 8] {
    let value = if value == 0.0 { 0.0 } else { value };
    let bits = value.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

fn encode_string(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        if byte == 0 {
            out.extend_from_slice(&[0, 0xff]);
        } else {
            out.push(byte);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Appends the order-preserving encoding of `value`: for any two values,
/// `compare(a, b)` equals the byte order of their encodings, and every
/// encoding is self-delimiting.
pub fn encode(out: &mut Vec<u8>, value: &Value) {
    out.push(rank(value));
    match value {
        Value::Null | Value::Bool(_) => {}
        Value::Number(n) => out.extend_from_slice(&number_bytes(number(n))),
        Value::String(text) => encode_string(out, text),
        Value::Array(items) => {
            for item in items {
                encode(out, item);
            }
            out.push(0);
        }
        Value::Object(entries) => {
            for (key, item) in entries {
                out.push(rank(&Value::String(String::new())));
                encode_string(out, key);
                encode(out, item);
            }
            out.push(0);
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`.
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn encoded(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, value);
        out
    }

    #[test]
    fn types_collate_in_couchdb_order() {
        let ordered = [
            json!(null),
            json!(false),
            json!(true),
            json!(-5),
            json!(0),
            json!(2.5),
            json!(10),
            json!(""),
            json!("A"),
            json!("a"),
            json!("ab"),
            json!([]),
            json!([1]),
            json!([1, 2]),
            json!({}),
            json!({"a": 1}),
        ];
        for pair in ordered.windows(2) {
            assert_eq!(compare(&pair[0], &pair[1]), Ordering::Less, "{pair:?}");
            assert!(encoded(&pair[0]) < encoded(&pair[1]), "{pair:?}");
        }
        assert_eq!(compare(&json!(0.0), &json!(-0.0)), Ordering::Equal);
        assert_eq!(encoded(&json!(0.0)), encoded(&json!(-0.0)));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1000i64..1000).prop_map(|n| json!(n)),
            (-1.0e6f64..1.0e6).prop_map(|n| json!(n)),
            "[a-c\\x00]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]{1,2}", inner, 0..3)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn encoding_order_equals_collation(a in json_value(), b in json_value()) {
            prop_assert_eq!(encoded(&a).cmp(&encoded(&b)), compare(&a, &b));
        }

        #[test]
        fn successor_bounds_every_extension(prefix in prop::collection::vec(any::<u8>(), 1..6),
                                            tail in prop::collection::vec(any::<u8>(), 0..6)) {
            if let Some(next) = successor(&prefix) {
                let mut extended = prefix.clone();
                extended.extend_from_slice(&tail);
                prop_assert!(extended < next);
                prop_assert!(prefix < next);
            }
        }
    }
}
