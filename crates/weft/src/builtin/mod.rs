//! Chaincode linked into the `weft` binary; a peer config names them with
//! `launcher: { builtin: <name> }` and they run in-process.

mod basic;

use std::collections::HashMap;
use std::sync::Arc;

use weft_shim::Chaincode;

/// Every built-in chaincode by name.
pub fn builtins() -> HashMap<String, Arc<dyn Chaincode>> {
    let mut builtins: HashMap<String, Arc<dyn Chaincode>> = HashMap::new();
    builtins.insert("basic".into(), Arc::new(basic::AssetTransfer));
    builtins
}
