//! Mango rich queries: every operator, with and without an index (same
//! answers; the index reads fewer documents), sort, fields, skip, limit,
//! use_index and bookmarks.

mod common;

use common::*;
use serde_json::{Value, json};
use weft_ledger::{Ledger, LedgerError, Page, QueryError};
use weft_protos::peer::TxValidationCode as Code;

const DOCS: usize = 60;

fn doc(i: usize) -> Value {
    let colors = ["red", "blue", "green"];
    let mut doc = json!({
        "docType": if i % 10 == 9 { "owner" } else { "asset" },
        "color": colors[i % 3],
        "size": i % 20,
        "owner": {"name": format!("owner{}", i % 4), "org": if i.is_multiple_of(2) { "Org1" } else { "Org2" }},
        "tags": if i.is_multiple_of(5) { json!(["rare", "old"]) } else { json!(["common"]) },
    });
    if i.is_multiple_of(6) {
        doc["appraised"] = json!(i * 10);
    }
    doc
}

fn key(i: usize) -> String {
    format!("asset{i:03}")
}

/// A ledger holding DOCS JSON documents plus one non-JSON value.
fn ledger_with_docs(f: &mut Fixture, dir: &std::path::Path) -> Ledger {
    let ledger = open(dir);
    let values: Vec<(String, Vec<u8>)> = (0..DOCS)
        .map(|i| (key(i), doc(i).to_string().into_bytes()))
        .collect();
    let mut pairs: Vec<(&str, &[u8])> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    pairs.push(("binary", b"\x00\x01not json"));
    let tx = f.tx(writes(&pairs));
    assert_eq!(f.codes(&ledger, vec![tx]), [Code::Valid]);
    ledger
}

fn keys(ledger: &Ledger, query: &Value) -> Vec<String> {
    let page = ledger
        .get_query_result(CHAINCODE, &query.to_string(), None)
        .unwrap_or_else(|error| panic!("{query}: {error}"));
    page.results.into_iter().map(|(key, _)| key).collect()
}

/// The keys a query should return, by evaluating `predicate` over the documents.
fn expected(predicate: impl Fn(&Value) -> bool) -> Vec<String> {
    (0..DOCS).filter(|i| predicate(&doc(*i))).map(key).collect()
}

fn operator_cases() -> Vec<(Value, Vec<String>)> {
    vec![
        (
            json!({"selector": {"color": "red"}}),
            expected(|d| d["color"] == "red"),
        ),
        (
            json!({"selector": {"color": {"$eq": "blue"}}}),
            expected(|d| d["color"] == "blue"),
        ),
        (
            json!({"selector": {"color": {"$ne": "blue"}}}),
            expected(|d| d["color"] != "blue"),
        ),
        (
            json!({"selector": {"size": {"$gt": 15}}}),
            expected(|d| d["size"].as_u64() > Some(15)),
        ),
        (
            json!({"selector": {"size": {"$gte": 15}}}),
            expected(|d| d["size"].as_u64() >= Some(15)),
        ),
        (
            json!({"selector": {"size": {"$lt": 3}}}),
            expected(|d| d["size"].as_u64() < Some(3)),
        ),
        (
            json!({"selector": {"size": {"$lte": 3}}}),
            expected(|d| d["size"].as_u64() <= Some(3)),
        ),
        (
            json!({"selector": {"size": {"$gt": 4, "$lte": 8}}}),
            expected(|d| (5..=8).contains(&d["size"].as_u64().unwrap_or(0))),
        ),
        (
            json!({"selector": {"color": {"$in": ["red", "green"]}}}),
            expected(|d| d["color"] != "blue"),
        ),
        (
            json!({"selector": {"color": {"$nin": ["red", "green"]}}}),
            expected(|d| d["color"] == "blue"),
        ),
        (
            json!({"selector": {"appraised": {"$exists": true}}}),
            expected(|d| d.get("appraised").is_some()),
        ),
        (
            json!({"selector": {"appraised": {"$exists": false}}}),
            expected(|d| d.get("appraised").is_none()),
        ),
        (
            json!({"selector": {"owner.name": {"$regex": "^owner[13]$"}}}),
            expected(|d| ["owner1", "owner3"].contains(&d["owner"]["name"].as_str().unwrap_or(""))),
        ),
        (
            json!({"selector": {"owner": {"org": "Org1"}}}),
            expected(|d| d["owner"]["org"] == "Org1"),
        ),
        (
            json!({"selector": {"$and": [{"color": "red"}, {"owner.org": "Org2"}]}}),
            expected(|d| d["color"] == "red" && d["owner"]["org"] == "Org2"),
        ),
        (
            json!({"selector": {"$or": [{"color": "red"}, {"size": 0}]}}),
            expected(|d| d["color"] == "red" || d["size"] == 0),
        ),
        (
            json!({"selector": {"$not": {"color": "red"}}}),
            expected(|d| d["color"] != "red"),
        ),
        (
            json!({"selector": {"tags": {"$in": ["rare"]}}}),
            expected(|d| d["tags"][0] == "rare"),
        ),
        (
            json!({"selector": {"docType": "asset", "color": "green", "size": {"$gte": 10}}}),
            expected(|d| {
                d["docType"] == "asset" && d["color"] == "green" && d["size"].as_u64() >= Some(10)
            }),
        ),
    ]
}

#[test]
fn every_operator_gives_the_same_answer_with_and_without_indexes() {
    let dir = tempfile::tempdir().expect("dir");
    let mut f = Fixture::new();
    let ledger = ledger_with_docs(&mut f, dir.path());
    let cases = operator_cases();
    for (query, want) in &cases {
        let page = ledger
            .get_query_result(CHAINCODE, &query.to_string(), None)
            .expect("query");
        assert_eq!(page.index, None);
        assert_eq!(
            page.docs_examined,
            DOCS as u64 + 1,
            "a full scan reads every value"
        );
        let got: Vec<String> = page.results.into_iter().map(|(k, _)| k).collect();
        assert_eq!(&got, want, "{query}");
    }

    for definition in [
        json!({"index": {"fields": ["color"]}, "ddoc": "indexColorDoc", "name": "indexColor", "type": "json"}),
        json!({"index": {"fields": ["size"]}, "ddoc": "indexSizeDoc", "name": "indexSize", "type": "json"}),
        json!({"index": {"fields": ["docType", "color", "size"]}, "name": "indexTypeColorSize"}),
        json!({"index": {"fields": ["owner.name"]}, "name": "indexOwnerName"}),
    ] {
        ledger
            .define_index(CHAINCODE, &definition.to_string())
            .expect("index");
    }
    for (query, want) in &cases {
        let mut got = keys(&ledger, query);
        got.sort();
        assert_eq!(&got, want, "{query} with indexes");
    }
    // Answers come from an index and read only the candidates.
    let page = ledger
        .get_query_result(
            CHAINCODE,
            &json!({"selector": {"size": {"$gt": 15}}}).to_string(),
            None,
        )
        .expect("query");
    assert_eq!(page.index.as_deref(), Some("indexSize"));
    assert_eq!(
        page.docs_examined,
        expected(|d| d["size"].as_u64() > Some(15)).len() as u64
    );
    let page = ledger
        .get_query_result(
            CHAINCODE,
            &json!({"selector": {"docType": "asset", "color": "green", "size": {"$gte": 10}}})
                .to_string(),
            None,
        )
        .expect("query");
    assert_eq!(page.index.as_deref(), Some("indexTypeColorSize"));
    assert_eq!(
        page.docs_examined,
        page.results.len() as u64,
        "an exact index range"
    );
}

#[test]
fn indexes_follow_commits() {
    let dir = tempfile::tempdir().expect("dir");
    let mut f = Fixture::new();
    let ledger = ledger_with_docs(&mut f, dir.path());
    ledger
        .define_index(
            CHAINCODE,
            r#"{"index": {"fields": ["color"]}, "name": "byColor"}"#,
        )
        .expect("index");
    let red = json!({"selector": {"color": "red"}});
    let before = keys(&ledger, &red);

    // Recolor asset000 (red → blue), delete asset003 (red), add a red one.
    let mut recolored = doc(0);
    recolored["color"] = json!("blue");
    let recolored = recolored.to_string();
    let new_red = json!({"color": "red", "size": 1}).to_string();
    let tx = f.tx(weft_protos::kvrwset::KvrwSet {
        writes: vec![
            weft_protos::kvrwset::KvWrite {
                key: key(0),
                is_delete: false,
                value: recolored.into_bytes(),
            },
            delete(&key(3)),
            weft_protos::kvrwset::KvWrite {
                key: "zz-new".into(),
                is_delete: false,
                value: new_red.into_bytes(),
            },
        ],
        ..Default::default()
    });
    assert_eq!(f.codes(&ledger, vec![tx]), [Code::Valid]);
    let mut want: Vec<String> = before
        .into_iter()
        .filter(|k| k != &key(0) && k != &key(3))
        .collect();
    want.push("zz-new".into());
    assert_eq!(keys(&ledger, &red), want);
    // The index survives a reopen.
    drop(ledger);
    let ledger = open(dir.path());
    let page = ledger
        .get_query_result(CHAINCODE, &red.to_string(), None)
        .expect("query");
    assert_eq!(page.index.as_deref(), Some("byColor"));
    assert_eq!(page.results.len(), want.len());
}

#[test]
fn pagination_returns_every_match_once_with_and_without_an_index() {
    let dir = tempfile::tempdir().expect("dir");
    let mut f = Fixture::new();
    let ledger = ledger_with_docs(&mut f, dir.path());
    let query = json!({"selector": {"docType": "asset"}}).to_string();
    let want = expected(|d| d["docType"] == "asset");
    for indexed in [false, true] {
        if indexed {
            ledger
                .define_index(
                    CHAINCODE,
                    r#"{"index": {"fields": ["docType"]}, "name": "byType"}"#,
                )
                .expect("index");
        }
        let mut got = Vec::new();
        let mut bookmark = String::new();
        let mut pages = 0;
        loop {
            let page = ledger
                .get_query_result(
                    CHAINCODE,
                    &query,
                    Some(&Page {
                        size: 7,
                        bookmark: bookmark.clone(),
                    }),
                )
                .expect("page");
            assert!(page.results.len() <= 7);
            assert_eq!(page.index.is_some(), indexed);
            got.extend(page.results.into_iter().map(|(k, _)| k));
            pages += 1;
            if page.bookmark.is_empty() {
                break;
            }
            bookmark = page.bookmark;
            assert!(pages < 100, "pagination terminates");
        }
        got.sort();
        assert_eq!(got, want, "indexed: {indexed}");
    }
}

#[test]
fn sort_fields_skip_limit_and_use_index() {
    let dir = tempfile::tempdir().expect("dir");
    let mut f = Fixture::new();
    let ledger = ledger_with_docs(&mut f, dir.path());
    ledger
        .define_index(
            CHAINCODE,
            r#"{"index": {"fields": ["size"]}, "ddoc": "sizeDoc", "name": "bySize"}"#,
        )
        .expect("index");
    let query = json!({
        "selector": {"color": "red", "size": {"$gte": 0}},
        "sort": [{"size": "desc"}],
        "fields": ["size", "owner.name"],
        "skip": 2,
        "limit": 3,
        "use_index": ["_design/sizeDoc", "bySize"],
    });
    let page = ledger
        .get_query_result(CHAINCODE, &query.to_string(), None)
        .expect("query");
    assert_eq!(page.index.as_deref(), Some("bySize"));
    let mut reds: Vec<Value> = (0..DOCS).map(doc).filter(|d| d["color"] == "red").collect();
    reds.sort_by(|a, b| b["size"].as_u64().cmp(&a["size"].as_u64()));
    let values: Vec<Value> = page
        .results
        .iter()
        .map(|(_, v)| serde_json::from_slice(v).expect("json"))
        .collect();
    assert_eq!(values.len(), 3);
    for (got, want) in values.iter().zip(&reds[2..5]) {
        assert_eq!(
            got,
            &json!({"size": want["size"], "owner": {"name": want["owner"]["name"]}})
        );
    }

    // Sorted pages continue where the previous one ended.
    let sorted = json!({"selector": {"color": "red"}, "sort": ["size"]}).to_string();
    let first = ledger
        .get_query_result(
            CHAINCODE,
            &sorted,
            Some(&Page {
                size: 15,
                bookmark: String::new(),
            }),
        )
        .expect("page");
    let second = ledger
        .get_query_result(
            CHAINCODE,
            &sorted,
            Some(&Page {
                size: 15,
                bookmark: first.bookmark.clone(),
            }),
        )
        .expect("page");
    assert_eq!(first.results.len() + second.results.len(), reds.len());
    assert!(second.bookmark.is_empty());
}

#[test]
fn bad_queries_and_index_definitions_are_clear_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let mut f = Fixture::new();
    let ledger = ledger_with_docs(&mut f, dir.path());
    let error = |query: &str| match ledger.get_query_result(CHAINCODE, query, None) {
        Err(LedgerError::Query(error)) => error.to_string(),
        other => panic!("{query}: expected a query error, got {other:?}"),
    };
    assert!(error("{not json").contains("not valid JSON"));
    assert!(error(r#"{"sort": ["a"]}"#).contains("no \"selector\""));
    assert!(error(r#"{"selector": {"a": {"$where": 1}}}"#).contains("unsupported operator $where"));
    assert!(error(r#"{"selector": {"a": {"$regex": "("}}}"#).contains("$regex"));
    assert!(error(r#"{"selector": {"$gt": 1}}"#).contains("must be applied to a field"));
    assert!(error(r#"{"selector": {"a": 1}, "limitt": 3}"#).contains("unknown query field"));
    let bookmark = ledger.get_query_result(
        CHAINCODE,
        r#"{"selector": {"color": "red"}}"#,
        Some(&Page {
            size: 2,
            bookmark: "nonsense".into(),
        }),
    );
    assert!(
        matches!(bookmark, Err(LedgerError::Query(QueryError::Bookmark(_)))),
        "{bookmark:?}"
    );

    for (definition, fragment) in [
        ("{}", "fields"),
        (r#"{"index": {"fields": []}}"#, "fields"),
        (
            r#"{"index": {"fields": ["a"]}, "type": "text"}"#,
            "only \"json\"",
        ),
        (r#"{"index": {"fields": [{"a": "up"}]}}"#, "asc"),
    ] {
        let error = ledger
            .define_index(CHAINCODE, definition)
            .expect_err(definition)
            .to_string();
        assert!(error.contains(fragment), "{definition}: {error}");
    }
}
