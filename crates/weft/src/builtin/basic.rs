//! `basic`: the asset-transfer chaincode with the functions of Fabric's
//! asset-transfer-basic sample (InitLedger, CreateAsset, ReadAsset,
//! UpdateAsset, DeleteAsset, AssetExists, TransferAsset, GetAllAssets) and
//! the same JSON documents, so applications written for the sample work.
//! Writes also emit a chaincode event named after the function, carrying
//! the asset. Written with weft-shim's contract API.

use serde::{Deserialize, Serialize};
use weft_shim::Stub;
use weft_shim::contract::{Contract, ContractError, Json};

/// Field order as the Go sample marshals it (alphabetical).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Asset {
    #[serde(rename = "AppraisedValue")]
    appraised_value: i64,
    #[serde(rename = "Color")]
    color: String,
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Owner")]
    owner: String,
    #[serde(rename = "Size")]
    size: i64,
}

impl Asset {
    fn new(id: String, color: String, size: i64, owner: String, appraised_value: i64) -> Self {
        Asset {
            appraised_value,
            color,
            id,
            owner,
            size,
        }
    }
}

type Outcome<T> = Result<T, ContractError>;

/// The contract, registered as built-in chaincode `basic`.
pub fn contract() -> Contract {
    Contract::new("basic")
        .submit("InitLedger", init_ledger)
        .submit("CreateAsset", create_asset)
        .evaluate("ReadAsset", read_asset)
        .submit("UpdateAsset", update_asset)
        .submit("DeleteAsset", delete_asset)
        .evaluate("AssetExists", asset_exists)
        .submit("TransferAsset", transfer_asset)
        .evaluate("GetAllAssets", get_all_assets)
}

fn read(stub: &mut Stub, id: &str) -> Outcome<Option<Asset>> {
    match stub.get_state(id)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ContractError::new(format!("asset {id} is not valid JSON: {e}"))),
    }
}

fn existing(stub: &mut Stub, id: &str) -> Outcome<Asset> {
    read(stub, id)?.ok_or_else(|| ContractError::new(format!("the asset {id} does not exist")))
}

fn write(stub: &mut Stub, asset: &Asset, event: &str) -> Outcome<Vec<u8>> {
    let bytes = serde_json::to_vec(asset)?;
    stub.put_state(&asset.id, bytes.clone())?;
    stub.set_event(event, bytes.clone());
    Ok(bytes)
}

fn init_ledger(stub: &mut Stub) -> Outcome<()> {
    let assets = [
        ("asset1", "blue", 5, "Tomoko", 300),
        ("asset2", "red", 5, "Brad", 400),
        ("asset3", "green", 10, "Jin Soo", 500),
        ("asset4", "yellow", 10, "Max", 600),
        ("asset5", "black", 15, "Adriana", 700),
        ("asset6", "white", 15, "Michel", 800),
    ];
    for (id, color, size, owner, appraised_value) in assets {
        let asset = Asset::new(id.into(), color.into(), size, owner.into(), appraised_value);
        stub.put_state(id, serde_json::to_vec(&asset)?)?;
    }
    Ok(())
}

fn create_asset(
    stub: &mut Stub,
    id: String,
    color: String,
    size: i64,
    owner: String,
    appraised_value: i64,
) -> Outcome<Vec<u8>> {
    if read(stub, &id)?.is_some() {
        return Err(ContractError::new(format!("the asset {id} already exists")));
    }
    write(
        stub,
        &Asset::new(id, color, size, owner, appraised_value),
        "CreateAsset",
    )
}

fn read_asset(stub: &mut Stub, id: String) -> Outcome<Json<Asset>> {
    existing(stub, &id).map(Json)
}

fn update_asset(
    stub: &mut Stub,
    id: String,
    color: String,
    size: i64,
    owner: String,
    appraised_value: i64,
) -> Outcome<Vec<u8>> {
    existing(stub, &id)?;
    write(
        stub,
        &Asset::new(id, color, size, owner, appraised_value),
        "UpdateAsset",
    )
}

fn delete_asset(stub: &mut Stub, id: String) -> Outcome<()> {
    let asset = existing(stub, &id)?;
    stub.del_state(&asset.id)?;
    stub.set_event("DeleteAsset", serde_json::to_vec(&asset)?);
    Ok(())
}

fn asset_exists(stub: &mut Stub, id: String) -> Outcome<bool> {
    Ok(stub.get_state(&id)?.is_some())
}

/// Returns the previous owner, as the sample does.
fn transfer_asset(stub: &mut Stub, id: String, new_owner: String) -> Outcome<String> {
    let mut asset = existing(stub, &id)?;
    let old_owner = std::mem::replace(&mut asset.owner, new_owner);
    write(stub, &asset, "TransferAsset")?;
    Ok(old_owner)
}

fn get_all_assets(stub: &mut Stub) -> Outcome<Json<Vec<Asset>>> {
    let mut assets = Vec::new();
    for (key, bytes) in stub.get_state_by_range("", "")? {
        let asset = serde_json::from_slice(&bytes)
            .map_err(|e| ContractError::new(format!("asset {key} is not valid JSON: {e}")))?;
        assets.push(asset);
    }
    Ok(Json(assets))
}

#[cfg(test)]
mod tests {
    use weft_shim::mock::MockLedger;

    use super::*;

    #[test]
    fn the_sample_flow_on_a_mock_ledger() {
        let basic = contract();
        let mut ledger = MockLedger::new("mychannel");
        ledger
            .invoke(&basic, &["InitLedger"])
            .result()
            .expect("init");
        assert_eq!(ledger.state().len(), 6);

        let created = ledger.invoke(&basic, &["CreateAsset", "a7", "blue", "5", "Tom", "300"]);
        let document = created.result().expect("create");
        assert_eq!(
            document,
            r#"{"AppraisedValue":300,"Color":"blue","ID":"a7","Owner":"Tom","Size":5}"#
        );
        let event = created.event.expect("an event");
        assert_eq!(event.event_name, "CreateAsset");
        assert_eq!(event.payload, document.as_bytes());

        let again = ledger.invoke(&basic, &["CreateAsset", "a7", "red", "1", "Ann", "1"]);
        assert_eq!(again.result().unwrap_err(), "the asset a7 already exists");
        let bad_size = ledger.invoke(&basic, &["CreateAsset", "a8", "red", "big", "Ann", "1"]);
        assert_eq!(
            bad_size.result().unwrap_err(),
            r#"argument 3 of CreateAsset: expected an integer, got "big""#
        );
        let short = ledger.invoke(&basic, &["CreateAsset", "a8"]);
        assert_eq!(
            short.result().unwrap_err(),
            "CreateAsset takes 5 argument(s), got 1"
        );
        assert!(
            !ledger.state().contains_key("a8"),
            "failed transactions write nothing"
        );

        let old = ledger.invoke(&basic, &["TransferAsset", "a7", "Ann"]);
        assert_eq!(old.result().expect("transfer"), "Tom");
        let read = ledger
            .evaluate(&basic, &["ReadAsset", "a7"])
            .result()
            .expect("read");
        assert!(read.contains(r#""Owner":"Ann""#), "{read}");

        let all = ledger
            .evaluate(&basic, &["GetAllAssets"])
            .result()
            .expect("all");
        let all: Vec<Asset> = serde_json::from_str(&all).expect("json");
        assert_eq!(all.len(), 7);
        assert_eq!(all[0].id, "a7");

        ledger
            .invoke(&basic, &["DeleteAsset", "asset1"])
            .result()
            .expect("delete");
        let exists = ledger.evaluate(&basic, &["AssetExists", "asset1"]);
        assert_eq!(exists.result().expect("exists"), "false");
        let missing = ledger.evaluate(&basic, &["ReadAsset", "asset1"]);
        assert_eq!(
            missing.result().unwrap_err(),
            "the asset asset1 does not exist"
        );
        let unknown = ledger.evaluate(&basic, &["Mint"]);
        assert!(
            unknown
                .result()
                .unwrap_err()
                .contains(r#"function "Mint" not found in contract basic"#)
        );
    }
}
