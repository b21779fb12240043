//! `basic`: the asset-transfer chaincode with the functions of Fabric's
//! asset-transfer-basic sample (InitLedger, CreateAsset, ReadAsset,
//! UpdateAsset, DeleteAsset, AssetExists, TransferAsset, GetAllAssets) and
//! the same JSON documents, so applications written for the sample work.
//! Writes also emit a chaincode event named after the function, carrying
//! the asset.

use serde::{Deserialize, Serialize};
use weft_protos::peer::Response;
use weft_shim::{Chaincode, Stub, error, success};

/// Field order as the Go sample marshals it (alphabetical).
#[derive(Debug, Clone, Serialize, Deserialize)]
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

pub struct AssetTransfer;

type Outcome = Result<Vec<u8>, String>;

fn number(text: &str, what: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("{what} must be an integer, got {text:?}"))
}

fn arity(params: &[String], expected: usize, function: &str) -> Result<(), String> {
    if params.len() == expected {
        Ok(())
    } else {
        Err(format!(
            "{function} takes {expected} argument(s), got {}",
            params.len()
        ))
    }
}

fn read(stub: &mut Stub, id: &str) -> Result<Option<Asset>, String> {
    match stub.get_state(id).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("asset {id} is not valid JSON: {e}")),
    }
}

fn write(stub: &mut Stub, asset: &Asset, event: &str) -> Result<Vec<u8>, String> {
    let bytes = serde_json::to_vec(asset).map_err(|e| e.to_string())?;
    stub.put_state(&asset.id, bytes.clone())
        .map_err(|e| e.to_string())?;
    stub.set_event(event, bytes.clone());
    Ok(bytes)
}

fn asset(params: &[String]) -> Result<Asset, String> {
    Ok(Asset {
        id: params[0].clone(),
        color: params[1].clone(),
        size: number(&params[2], "size")?,
        owner: params[3].clone(),
        appraised_value: number(&params[4], "appraisedValue")?,
    })
}

impl AssetTransfer {
    fn call(&self, stub: &mut Stub, function: &str, params: &[String]) -> Outcome {
        match function {
            "InitLedger" => {
                let assets = [
                    ("asset1", "blue", 5, "Tomoko", 300),
                    ("asset2", "red", 5, "Brad", 400),
                    ("asset3", "green", 10, "Jin Soo", 500),
                    ("asset4", "yellow", 10, "Max", 600),
                    ("asset5", "black", 15, "Adriana", 700),
                    ("asset6", "white", 15, "Michel", 800),
                ];
                for (id, color, size, owner, value) in assets {
                    let asset = Asset {
                        id: id.into(),
                        color: color.into(),
                        size,
                        owner: owner.into(),
                        appraised_value: value,
                    };
                    let bytes = serde_json::to_vec(&asset).map_err(|e| e.to_string())?;
                    stub.put_state(id, bytes).map_err(|e| e.to_string())?;
                }
                Ok(Vec::new())
            }
            "CreateAsset" => {
                arity(params, 5, function)?;
                let asset = asset(params)?;
                if read(stub, &asset.id)?.is_some() {
                    return Err(format!("the asset {} already exists", asset.id));
                }
                write(stub, &asset, function)
            }
            "ReadAsset" => {
                arity(params, 1, function)?;
                let bytes = stub.get_state(&params[0]).map_err(|e| e.to_string())?;
                bytes.ok_or_else(|| format!("the asset {} does not exist", params[0]))
            }
            "UpdateAsset" => {
                arity(params, 5, function)?;
                let asset = asset(params)?;
                if read(stub, &asset.id)?.is_none() {
                    return Err(format!("the asset {} does not exist", asset.id));
                }
                write(stub, &asset, function)
            }
            "DeleteAsset" => {
                arity(params, 1, function)?;
                let Some(asset) = read(stub, &params[0])? else {
                    return Err(format!("the asset {} does not exist", params[0]));
                };
                stub.del_state(&asset.id).map_err(|e| e.to_string())?;
                stub.set_event(
                    function,
                    serde_json::to_vec(&asset).map_err(|e| e.to_string())?,
                );
                Ok(Vec::new())
            }
            "AssetExists" => {
                arity(params, 1, function)?;
                let exists = stub
                    .get_state(&params[0])
                    .map_err(|e| e.to_string())?
                    .is_some();
                Ok(exists.to_string().into_bytes())
            }
            "TransferAsset" => {
                arity(params, 2, function)?;
                let Some(mut asset) = read(stub, &params[0])? else {
                    return Err(format!("the asset {} does not exist", params[0]));
                };
                let old_owner = std::mem::replace(&mut asset.owner, params[1].clone());
                write(stub, &asset, function)?;
                Ok(old_owner.into_bytes())
            }
            "GetAllAssets" => {
                arity(params, 0, function)?;
                let mut assets = Vec::new();
                for (_, bytes) in stub.get_state_by_range("", "").map_err(|e| e.to_string())? {
                    let asset: serde_json::Value = serde_json::from_slice(&bytes)
                        .map_err(|e| format!("a stored asset is not valid JSON: {e}"))?;
                    assets.push(asset);
                }
                serde_json::to_vec(&assets).map_err(|e| e.to_string())
            }
            other => Err(format!(
                "function {other:?} is not defined in chaincode basic (InitLedger, CreateAsset, ReadAsset, UpdateAsset, DeleteAsset, AssetExists, TransferAsset, GetAllAssets)"
            )),
        }
    }
}

impl Chaincode for AssetTransfer {
    fn invoke(&self, stub: &mut Stub) -> Response {
        let (function, params) = stub.function_and_parameters();
        match self.call(stub, &function, &params) {
            Ok(payload) => success(payload),
            Err(message) => error(message),
        }
    }
}
