//! A chaincode of its own, written with weft-shim's contract API and run as
//! a standalone process: classic mode when a peer launches it (the `CORE_*`
//! environment), chaincode-as-a-service when `CHAINCODE_SERVER_ADDRESS` and
//! `CHAINCODE_ID` are set.
//!
//! ```text
//! cargo build --release --example counter
//! CHAINCODE_SERVER_ADDRESS=127.0.0.1:9999 CHAINCODE_ID=counter_1.0:... target/release/examples/counter
//! ```

use std::sync::Arc;

use weft_shim::Stub;
use weft_shim::contract::{Contract, ContractError};

/// Adds `by` to counter `name` and returns the new value.
fn add(stub: &mut Stub, name: String, by: i64) -> Result<i64, ContractError> {
    let current = get(stub, name.clone())?;
    let next = current
        .checked_add(by)
        .ok_or_else(|| ContractError::new(format!("counter {name} would overflow")))?;
    stub.put_state(&name, next.to_string())?;
    stub.set_event("Added", format!("{name}={next}"));
    Ok(next)
}

/// The value of counter `name` (0 if it was never added to).
fn get(stub: &mut Stub, name: String) -> Result<i64, ContractError> {
    match stub.get_state(&name)? {
        None => Ok(0),
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .parse()
            .map_err(|_| ContractError::new(format!("counter {name} holds a non-number"))),
    }
}

fn main() {
    let contract = Contract::new("counter")
        .submit("Add", add)
        .evaluate("Get", get);
    if let Err(error) = weft_shim_host::start(Arc::new(contract)) {
        eprintln!("counter: {error}");
        std::process::exit(1);
    }
}
