//! Chaincode linked into the `weft` binary; a peer config names them with
//! `launcher: { builtin: <name> }` and they run in-process.

mod basic;

use std::collections::HashMap;
use std::sync::Arc;

use weft_shim::Chaincode;

/// Every built-in chaincode by name.
pub fn builtins() -> HashMap<String, Arc<dyn Chaincode>> {
    let mut builtins: HashMap<String, Arc<dyn Chaincode>> = HashMap::new();
    builtins.insert("basic".into(), Arc::new(basic::contract()));
    builtins
}

/// The built-in chaincode `name`, or an error listing the built-ins.
pub fn named(name: &str) -> anyhow::Result<Arc<dyn Chaincode>> {
    let mut all = builtins();
    all.remove(name).ok_or_else(|| {
        let mut known: Vec<String> = all.into_keys().collect();
        known.sort();
        anyhow::anyhow!(
            "no built-in chaincode {name:?} (built-ins: {})",
            known.join(", ")
        )
    })
}
