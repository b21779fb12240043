//! The OpenAPI 3 document at `/api/v1/openapi.json`, written from the same
//! route paths the router serves.

use serde_json::{Value, json};

pub const TRANSACTIONS: &str = "/api/v1/channels/{channel}/chaincodes/{chaincode}/transactions";
pub const QUERY: &str = "/api/v1/channels/{channel}/chaincodes/{chaincode}/query";
pub const TRANSACTION: &str = "/api/v1/channels/{channel}/transactions/{txId}";
pub const EVENTS: &str = "/api/v1/channels/{channel}/events";
pub const DOCUMENT: &str = "/api/v1/openapi.json";

/// Every (method, path) the gateway serves.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", TRANSACTIONS),
    ("post", QUERY),
    ("get", TRANSACTION),
    ("get", EVENTS),
    ("get", DOCUMENT),
];

fn path_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

fn errors(codes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for code in codes {
        let description = match *code {
            "400" => "The request is malformed; the message names the field.",
            "401" => "No API key, or an unknown or revoked one.",
            "403" => "The key's identity may not do this (the channel's policies said no).",
            "404" => "No such channel, chaincode, transaction or endpoint.",
            "409" => "The transaction committed invalid, or kept conflicting after every retry.",
            "413" => "The body is larger than the gateway accepts.",
            "422" => "The chaincode answered with an error; the message is the chaincode's.",
            "429" => "Too many requests in flight.",
            "502" => "The network answered with an error.",
            "503" => "The network is unreachable.",
            "504" => "The network did not answer in time.",
            _ => "Error.",
        };
        out.insert(
            (*code).into(),
            json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// The document.
pub fn document() -> Value {
    let channel = path_parameter("channel", "The channel (mychannel).");
    let chaincode = path_parameter("chaincode", "The chaincode's name on the channel.");
    let call_body = json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Call"}}}
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "weft REST gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Submit and query chaincode, follow transactions and chaincode events over JSON and HTTP. Every call but this document needs `Authorization: Bearer <key>` (`weft rest key create`). Answers carry `X-Request-Id`."
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key from `weft rest key create`."}},
            "schemas": {
                "Call": {
                    "type": "object",
                    "required": ["function"],
                    "additionalProperties": false,
                    "properties": {
                        "function": {"type": "string", "minLength": 1},
                        "args": {"type": "array", "items": {"type": "string"}},
                        "transient": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Private inputs the chaincode reads with GetTransient; never in the transaction."}
                    }
                },
                "Committed": {
                    "type": "object",
                    "required": ["txId", "status", "blockNumber"],
                    "properties": {
                        "txId": {"type": "string"},
                        "status": {"type": "string", "example": "VALID"},
                        "blockNumber": {"type": "integer", "format": "int64"},
                        "result": {"description": "The chaincode's answer: JSON when it is JSON, else a string."},
                        "attempts": {"type": "integer", "description": "Endorsements it took (read conflicts are retried)."}
                    }
                },
                "Accepted": {"type": "object", "required": ["txId", "status"], "properties": {"txId": {"type": "string"}, "status": {"type": "string", "example": "PENDING"}}},
                "Status": {
                    "type": "object",
                    "required": ["txId", "status"],
                    "properties": {
                        "txId": {"type": "string"},
                        "status": {"type": "string", "description": "PENDING, VALID, RETRIED (committed as committedTxId after a read conflict), FAILED, or the validation code of an invalid commit (MVCC_READ_CONFLICT, ENDORSEMENT_POLICY_FAILURE, ...)."},
                        "blockNumber": {"type": "integer", "format": "int64", "nullable": true},
                        "committedTxId": {"type": "string"},
                        "attempts": {"type": "integer"},
                        "result": {},
                        "error": {"$ref": "#/components/schemas/ErrorDetail"}
                    }
                },
                "QueryResult": {"type": "object", "required": ["result"], "properties": {"result": {"description": "JSON when the chaincode answered JSON, else a string."}}},
                "ErrorDetail": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "example": "CHAINCODE_ERROR"},
                        "message": {"type": "string"},
                        "phase": {"type": "string", "enum": ["config", "evaluate", "endorse", "submit", "commit", "events"]},
                        "requestId": {"type": "string"}
                    }
                },
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}}}
            }
        },
        "paths": {
            TRANSACTIONS: {"post": {
                "operationId": "submitTransaction",
                "summary": "Submit a transaction: endorse, order, wait for the commit (read conflicts retried; a lost answer checked by transaction id, never sent as a new transaction).",
                "parameters": [channel, chaincode, {"name": "async", "in": "query", "required": false, "description": "Answer 202 with the transaction id once the orderer has it.", "schema": {"type": "boolean"}}],
                "requestBody": call_body,
                "responses": merge(json!({
                    "200": {"description": "Committed valid.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Committed"}}}},
                    "202": {"description": "Handed to the orderer (with async=true).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}
                }), errors(&["400", "401", "403", "404", "409", "413", "422", "429", "502", "503", "504"]))
            }},
            QUERY: {"post": {
                "operationId": "query",
                "summary": "Evaluate a chaincode function on a peer; nothing is ordered.",
                "parameters": [channel, chaincode],
                "requestBody": call_body,
                "responses": merge(json!({"200": {"description": "The chaincode's answer.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueryResult"}}}}}), errors(&["400", "401", "403", "404", "413", "422", "429", "502", "503", "504"]))
            }},
            TRANSACTION: {"get": {
                "operationId": "transactionStatus",
                "summary": "A transaction's status and block.",
                "parameters": [channel, path_parameter("txId", "The transaction id.")],
                "responses": merge(json!({"200": {"description": "Its status.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}}}), errors(&["400", "401", "403", "404", "429", "502", "503", "504"]))
            }},
            EVENTS: {"get": {
                "operationId": "chaincodeEvents",
                "summary": "Chaincode events of valid transactions as Server-Sent Events: `id: <block>:<tx>`, `event: <name>`, JSON data. Resume with `since` or the Last-Event-ID header.",
                "parameters": [
                    channel,
                    {"name": "chaincode", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "since", "in": "query", "required": false, "description": "A block number (events from that block on), or an event id `block:tx` (events after it). Default: from now on.", "schema": {"type": "string"}},
                    {"name": "Last-Event-ID", "in": "header", "required": false, "description": "Resume after this event id (sent by EventSource clients on reconnect).", "schema": {"type": "string"}}
                ],
                "responses": merge(json!({"200": {"description": "An event stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}}}), errors(&["400", "401", "403", "404", "502"]))
            }},
            DOCUMENT: {"get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI 3 document.", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_exactly_the_routes() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        let mut listed: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, operations)| {
                operations
                    .as_object()
                    .expect("operations")
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        listed.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        routes.sort();
        assert_eq!(listed, routes);
    }
}
