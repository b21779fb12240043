//! The contract API on the mock ledger: typed parameters and results,
//! routing between contracts, metadata, composite keys, history, client
//! identity and transient data.

use std::collections::BTreeMap;

use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde::{Deserialize, Serialize};
use weft_shim::contract::{Contract, ContractError, Json, METADATA_FUNCTION, Router};
use weft_shim::mock::MockLedger;
use weft_shim::{Stub, create_composite_key, split_composite_key};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

fn place(
    stub: &mut Stub,
    id: String,
    order: Json<Order>,
    rush: bool,
) -> Result<u64, ContractError> {
    if order.0.quantity == 0 {
        return Err("an order needs a quantity".into());
    }
    let key = create_composite_key("order", &[&order.0.item, &id])?;
    stub.put_state(&key, serde_json::to_vec(&order.0)?)?;
    stub.set_event("Placed", id.clone());
    Ok(u64::from(order.0.quantity) * if rush { 2 } else { 1 })
}

fn orders_of(stub: &mut Stub, item: String) -> Result<Json<Vec<String>>, ContractError> {
    let ids = stub
        .get_state_by_partial_composite_key("order", &[&item])?
        .into_iter()
        .filter_map(|(key, _)| split_composite_key(&key))
        .map(|(_, attributes)| attributes[1].clone())
        .collect();
    Ok(Json(ids))
}

fn put(stub: &mut Stub, key: String, value: String) -> Result<String, ContractError> {
    stub.put_state(&key, value)?;
    // Reads see committed state only, never this transaction's own write.
    let seen = stub.get_state(&key)?;
    Ok(format!("{seen:?}"))
}

fn keys(stub: &mut Stub) -> Result<Json<Vec<String>>, ContractError> {
    let keys = stub.get_state_by_range("", "")?.into_iter().map(|(k, _)| k);
    Ok(Json(keys.collect()))
}

fn history(stub: &mut Stub, key: String) -> Result<Json<Vec<(String, bool)>>, ContractError> {
    let history = stub.get_history_for_key(&key)?;
    Ok(Json(
        history
            .into_iter()
            .map(|m| (String::from_utf8_lossy(&m.value).into_owned(), m.is_delete))
            .collect(),
    ))
}

fn remove(stub: &mut Stub, key: String) -> Result<(), ContractError> {
    Ok(stub.del_state(&key)?)
}

fn whoami(stub: &mut Stub) -> Result<String, ContractError> {
    let identity = stub.client_identity()?;
    let role = identity.attribute("role").unwrap_or_default();
    Ok(format!("{} {} {role}", identity.msp_id(), identity.id()))
}

fn secret(stub: &mut Stub) -> Result<Vec<u8>, ContractError> {
    stub.transient()
        .get("secret")
        .cloned()
        .ok_or_else(|| "no secret".into())
}

fn orders() -> Contract {
    Contract::new("orders")
        .submit("Place", place)
        .evaluate("OrdersOf", orders_of)
}

fn store() -> Contract {
    Contract::new("store")
        .submit("Put", put)
        .submit("Remove", remove)
        .evaluate("Keys", keys)
        .evaluate("History", history)
        .evaluate("WhoAmI", whoami)
        .evaluate("Secret", secret)
}

#[test]
fn typed_parameters_and_results() {
    let contract = orders();
    let mut ledger = MockLedger::new("mychannel");
    let placed = ledger.invoke(
        &contract,
        &["Place", "o1", r#"{"item":"tea","quantity":3}"#, "true"],
    );
    assert_eq!(placed.result(), Ok("6".into()));
    assert_eq!(placed.event.expect("event").event_name, "Placed");

    let bad_json = ledger.invoke(&contract, &["Place", "o2", "{", "false"]);
    assert!(
        bad_json
            .result()
            .unwrap_err()
            .starts_with("argument 2 of Place: expected a JSON document")
    );
    let bad_bool = ledger.invoke(
        &contract,
        &["Place", "o2", r#"{"item":"tea","quantity":1}"#, "yes"],
    );
    assert_eq!(
        bad_bool.result().unwrap_err(),
        r#"argument 3 of Place: expected true or false, got "yes""#
    );
    let refused = ledger.invoke(
        &contract,
        &["Place", "o2", r#"{"item":"tea","quantity":0}"#, "false"],
    );
    assert_eq!(refused.result().unwrap_err(), "an order needs a quantity");
    assert_eq!(refused.response.status, 500);
    assert!(refused.writes.is_empty());

    ledger
        .invoke(
            &contract,
            &["Place", "o3", r#"{"item":"tea","quantity":1}"#, "false"],
        )
        .result()
        .expect("o3");
    ledger
        .invoke(
            &contract,
            &["Place", "o4", r#"{"item":"teapot","quantity":1}"#, "false"],
        )
        .result()
        .expect("o4");
    let tea = ledger
        .evaluate(&contract, &["OrdersOf", "tea"])
        .result()
        .expect("orders");
    assert_eq!(
        tea, r#"["o1","o3"]"#,
        "partial keys match whole attributes, not prefixes"
    );
}

#[test]
fn reads_see_committed_state_and_failures_commit_nothing() {
    let contract = store();
    let mut ledger = MockLedger::new("mychannel");
    assert_eq!(
        ledger.invoke(&contract, &["Put", "k", "v1"]).result(),
        Ok("None".into())
    );
    assert_eq!(
        ledger.invoke(&contract, &["Put", "k", "v2"]).result(),
        Ok(r#"Some([118, 49])"#.into())
    );
    let evaluated = ledger.evaluate(&contract, &["Put", "k", "v3"]);
    assert_eq!(evaluated.writes.get("k"), Some(&Some(b"v3".to_vec())));
    assert_eq!(
        ledger.state().get("k"),
        Some(&b"v2".to_vec()),
        "evaluate commits nothing"
    );
    ledger
        .invoke(&contract, &["Remove", "k"])
        .result()
        .expect("remove");
    let history = ledger
        .evaluate(&contract, &["History", "k"])
        .result()
        .expect("history");
    assert_eq!(history, r#"[["v1",false],["v2",false],["",true]]"#);

    ledger.put(
        &create_composite_key("order", &["tea", "o1"]).expect("key"),
        "{}",
    );
    ledger.put("plain", "1");
    let keys = ledger
        .evaluate(&contract, &["Keys"])
        .result()
        .expect("keys");
    assert_eq!(
        keys, r#"["plain"]"#,
        "an open range leaves composite keys out"
    );
}

#[test]
fn routing_metadata_and_unknown_names() {
    let router = Router::new().contract(orders()).contract(store());
    let mut ledger = MockLedger::new("mychannel");
    assert_eq!(
        ledger.invoke(&router, &["store:Put", "k", "v"]).result(),
        Ok("None".into())
    );
    assert_eq!(ledger.state().get("k"), Some(&b"v".to_vec()));
    let default = ledger.invoke(
        &router,
        &["Place", "o1", r#"{"item":"tea","quantity":1}"#, "false"],
    );
    assert_eq!(
        default.result(),
        Ok("1".into()),
        "bare names go to the first contract"
    );

    let unknown = ledger
        .evaluate(&router, &["shop:Put"])
        .result()
        .unwrap_err();
    assert_eq!(unknown, r#"contract "shop" not found in this chaincode"#);
    let missing = ledger
        .evaluate(&router, &["store:Get"])
        .result()
        .unwrap_err();
    assert!(
        missing.starts_with(r#"function "Get" not found in contract store"#),
        "{missing}"
    );
    let arity = ledger
        .evaluate(&router, &["store:Put", "k"])
        .result()
        .unwrap_err();
    assert_eq!(arity, "Put takes 2 argument(s), got 1");
    assert_eq!(
        ledger.evaluate(&router, &[]).result().unwrap_err(),
        "no function name given"
    );

    let metadata = ledger
        .evaluate(&router, &[METADATA_FUNCTION])
        .result()
        .expect("metadata");
    let metadata: serde_json::Value = serde_json::from_str(&metadata).expect("json");
    let place = &metadata["contracts"]["orders"]["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .find(|t| t["name"] == "Place")
        .expect("Place")
        .clone();
    assert_eq!(place["tags"][0], "SUBMIT");
    let types: Vec<&str> = place["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| p["schema"]["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["string", "object", "boolean"]);
    assert_eq!(metadata["contracts"]["orders"]["default"], true);
    assert_eq!(metadata["contracts"]["store"]["default"], false);
}

#[test]
fn composite_keys_round_trip_and_refuse_separators() {
    let key = create_composite_key("order", &["tea", "o1"]).expect("key");
    assert_eq!(key, "\u{0}order\u{0}tea\u{0}o1\u{0}");
    assert_eq!(
        split_composite_key(&key),
        Some(("order".into(), vec!["tea".into(), "o1".into()]))
    );
    assert_eq!(split_composite_key("plain"), None);
    assert!(create_composite_key("order", &["a\u{0}b"]).is_err());
}

#[test]
fn client_identity_and_transient_data() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CountryName, "US");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "org1.example.com");
    params
        .distinguished_name
        .push(DnType::CommonName, "User1@org1.example.com");
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 2, 3, 4, 5, 6, 7, 8, 1],
            br#"{"attrs":{"role":"auditor","hf.EnrollmentID":"user1"}}"#.to_vec(),
        ));
    let certificate = params.self_signed(&key).expect("certificate");
    let contract = store();
    let mut ledger =
        MockLedger::new("mychannel").with_creator("Org1MSP", certificate.pem().as_bytes());
    let me = ledger
        .evaluate(&contract, &["WhoAmI"])
        .result()
        .expect("whoami");
    let dn = "CN=User1@org1.example.com,O=org1.example.com,C=US";
    assert_eq!(me, format!("Org1MSP x509::{dn}::{dn} auditor"));

    assert_eq!(
        ledger
            .evaluate(&contract, &["Secret"])
            .result()
            .unwrap_err(),
        "no secret"
    );
    ledger.set_transient(BTreeMap::from([("secret".to_owned(), b"s3".to_vec())]));
    assert_eq!(
        ledger.evaluate(&contract, &["Secret"]).result(),
        Ok("s3".into())
    );

    let anonymous = MockLedger::new("mychannel").evaluate(&contract, &["WhoAmI"]);
    let error = anonymous.result().unwrap_err();
    assert!(
        error.starts_with(
            "the client identity: the creator's certificate: no CERTIFICATE PEM block"
        ),
        "{error}"
    );
}
