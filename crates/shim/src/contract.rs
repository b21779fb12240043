//! The contract API: a chaincode written as typed functions.
//!
//! A [`Contract`] maps transaction names to plain Rust functions whose
//! parameters are parsed from the proposal's string arguments ([`Param`]) and
//! whose results become the response payload ([`Payload`]); a function
//! returning `Err` answers with status 500 and the error's message, as
//! Fabric's contract APIs do. [`Json`] carries JSON documents in either
//! direction. Several contracts can share one chaincode through a
//! [`Router`], called as `Contract:Function`, like Fabric's
//! `fabric-contract-api`; `org.hyperledger.fabric:GetMetadata` describes
//! them all.
//!
//! ```
//! use weft_shim::contract::{Contract, ContractError, Json};
//! use weft_shim::Stub;
//!
//! fn put(stub: &mut Stub, key: String, value: i64) -> Result<(), ContractError> {
//!     stub.put_state(&key, value.to_string())?;
//!     Ok(())
//! }
//!
//! fn get(stub: &mut Stub, key: String) -> Result<String, ContractError> {
//!     let value = stub.get_state(&key)?;
//!     value.map(|v| String::from_utf8_lossy(&v).into_owned())
//!         .ok_or_else(|| ContractError::new(format!("{key} does not exist")))
//! }
//!
//! let counter = Contract::new("counter").submit("Put", put).evaluate("Get", get);
//! ```

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_protos::peer::Response;

use crate::{Chaincode, ShimError, Stub, error, success};

/// The function name Fabric's contract APIs answer with their metadata.
pub const METADATA_FUNCTION: &str = "org.hyperledger.fabric:GetMetadata";

/// A failed transaction: its message becomes the response's (status 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError(String);

impl ContractError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ContractError {}

impl From<ShimError> for ContractError {
    fn from(error: ShimError) -> Self {
        Self(error.to_string())
    }
}

impl From<serde_json::Error> for ContractError {
    fn from(error: serde_json::Error) -> Self {
        Self(format!("JSON: {error}"))
    }
}

impl From<String> for ContractError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for ContractError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

/// A JSON document: as a parameter, parsed from the argument; as a result,
/// serialized into the payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

/// A function parameter, parsed from one proposal argument.
pub trait Param: Sized {
    /// Parses the argument, or says what was expected.
    fn parse(arg: &[u8]) -> Result<Self, String>;
    /// The JSON Schema of the argument, for the contract metadata.
    fn schema() -> serde_json::Value;
}

fn text(arg: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(arg).map_err(|_| "expected UTF-8 text".to_owned())
}

impl Param for String {
    fn parse(arg: &[u8]) -> Result<Self, String> {
        text(arg).map(str::to_owned)
    }
    fn schema() -> serde_json::Value {
        serde_json::json!({ "type": "string" })
    }
}

impl Param for Vec<u8> {
    fn parse(arg: &[u8]) -> Result<Self, String> {
        Ok(arg.to_vec())
    }
    fn schema() -> serde_json::Value {
        serde_json::json!({ "type": "string", "format": "byte" })
    }
}

impl Param for bool {
    fn parse(arg: &[u8]) -> Result<Self, String> {
        match text(arg)? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("expected true or false, got {other:?}")),
        }
    }
    fn schema() -> serde_json::Value {
        serde_json::json!({ "type": "boolean" })
    }
}

macro_rules! number_params {
    ($($t:ty => $kind:literal),*) => {$(
        impl Param for $t {
            fn parse(arg: &[u8]) -> Result<Self, String> {
                let text = text(arg)?;
                text.trim().parse().map_err(|_| format!(concat!("expected ", $kind, ", got {:?}"), text))
            }
            fn schema() -> serde_json::Value {
                serde_json::json!({ "type": if $kind == "a number" { "number" } else { "integer" } })
            }
        }
    )*};
}

number_params!(
    i64 => "an integer", i32 => "an integer", u64 => "a non-negative integer",
    u32 => "a non-negative integer", f64 => "a number"
);

impl<T: DeserializeOwned> Param for Json<T> {
    fn parse(arg: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(arg)
            .map(Json)
            .map_err(|e| format!("expected a JSON document: {e}"))
    }
    fn schema() -> serde_json::Value {
        serde_json::json!({ "type": "object" })
    }
}

/// A function result, turned into the response payload.
pub trait Payload {
    fn into_payload(self) -> Result<Vec<u8>, ContractError>;
}

impl Payload for () {
    fn into_payload(self) -> Result<Vec<u8>, ContractError> {
        Ok(Vec::new())
    }
}

impl Payload for Vec<u8> {
    fn into_payload(self) -> Result<Vec<u8>, ContractError> {
        Ok(self)
    }
}

impl Payload for String {
    fn into_payload(self) -> Result<Vec<u8>, ContractError> {
        Ok(self.into_bytes())
    }
}

macro_rules! display_payloads {
    ($($t:ty),*) => {$(
        impl Payload for $t {
            fn into_payload(self) -> Result<Vec<u8>, ContractError> {
                Ok(self.to_string().into_bytes())
            }
        }
    )*};
}

display_payloads!(bool, i64, i32, u64, u32, f64);

impl<T: Serialize> Payload for Json<T> {
    fn into_payload(self) -> Result<Vec<u8>, ContractError> {
        Ok(serde_json::to_vec(&self.0)?)
    }
}

/// A function callable as a transaction: `fn(&mut Stub, P1, P2, ...) ->
/// Result<R, ContractError>` with every `P` a [`Param`] and `R` a
/// [`Payload`]. `Args` is the tuple of parameter types.
pub trait Handler<Args>: Send + Sync + 'static {
    /// Parses `args` (the parameters, function name excluded) and runs;
    /// `function` names the transaction in argument errors.
    fn call(
        &self,
        stub: &mut Stub,
        function: &str,
        args: &[Vec<u8>],
    ) -> Result<Vec<u8>, ContractError>;
    /// The schema of each parameter.
    fn parameters() -> Vec<serde_json::Value>;
}

fn parameter<P: Param>(function: &str, args: &[Vec<u8>], index: usize) -> Result<P, ContractError> {
    P::parse(&args[index])
        .map_err(|e| ContractError(format!("argument {} of {function}: {e}", index + 1)))
}

macro_rules! handlers {
    ($(($($p:ident $i:tt),*)),*) => {$(
        impl<F, R, $($p),*> Handler<($($p,)*)> for F
        where
            F: Fn(&mut Stub $(, $p)*) -> Result<R, ContractError> + Send + Sync + 'static,
            R: Payload,
            $($p: Param,)*
        {
            #[allow(unused_variables)]
            fn call(
                &self,
                stub: &mut Stub,
                function: &str,
                args: &[Vec<u8>],
            ) -> Result<Vec<u8>, ContractError> {
                self(stub $(, parameter::<$p>(function, args, $i)?)*)?.into_payload()
            }
            fn parameters() -> Vec<serde_json::Value> {
                vec![$($p::schema()),*]
            }
        }
    )*};
}

handlers!(
    (),
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, G 5),
    (A 0, B 1, C 2, D 3, E 4, G 5, H 6),
    (A 0, B 1, C 2, D 3, E 4, G 5, H 6, I 7)
);

type Call =
    Box<dyn Fn(&mut Stub, &str, &[Vec<u8>]) -> Result<Vec<u8>, ContractError> + Send + Sync>;

struct Transaction {
    call: Call,
    parameters: Vec<serde_json::Value>,
    submit: bool,
}

/// Named transactions: a chaincode on its own, or one of a [`Router`]'s.
pub struct Contract {
    name: String,
    transactions: BTreeMap<String, Transaction>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("name", &self.name)
            .field("transactions", &self.transactions.keys())
            .finish()
    }
}

impl Contract {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transactions: BTreeMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn add<Args, H: Handler<Args>>(mut self, name: &str, handler: H, submit: bool) -> Self {
        let transaction = Transaction {
            call: Box::new(move |stub, function, args| handler.call(stub, function, args)),
            parameters: H::parameters(),
            submit,
        };
        self.transactions.insert(name.to_owned(), transaction);
        self
    }

    /// Adds a transaction that updates the ledger (submitted).
    pub fn submit<Args, H: Handler<Args>>(self, name: &str, handler: H) -> Self {
        self.add(name, handler, true)
    }

    /// Adds a transaction that only reads (evaluated).
    pub fn evaluate<Args, H: Handler<Args>>(self, name: &str, handler: H) -> Self {
        self.add(name, handler, false)
    }

    /// Runs `function` with `params` (the arguments after the function name).
    pub fn call(
        &self,
        stub: &mut Stub,
        function: &str,
        params: &[Vec<u8>],
    ) -> Result<Vec<u8>, ContractError> {
        let Some(transaction) = self.transactions.get(function) else {
            let known: Vec<&str> = self.transactions.keys().map(String::as_str).collect();
            return Err(ContractError(format!(
                "function {function:?} not found in contract {} (it has {})",
                self.name,
                known.join(", ")
            )));
        };
        if params.len() != transaction.parameters.len() {
            return Err(ContractError(format!(
                "{function} takes {} argument(s), got {}",
                transaction.parameters.len(),
                params.len()
            )));
        }
        (transaction.call)(stub, function, params)
    }

    fn metadata(&self, default: bool) -> serde_json::Value {
        let transactions: Vec<serde_json::Value> = self
            .transactions
            .iter()
            .map(|(name, transaction)| {
                let parameters: Vec<serde_json::Value> = transaction
                    .parameters
                    .iter()
                    .enumerate()
                    .map(|(i, schema)| serde_json::json!({ "name": format!("arg{i}"), "schema": schema }))
                    .collect();
                serde_json::json!({
                    "name": name,
                    "tags": [if transaction.submit { "SUBMIT" } else { "EVALUATE" }],
                    "parameters": parameters,
                })
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "default": default,
            "transactions": transactions,
        })
    }
}

/// Several contracts in one chaincode. A function `Name:Function` runs on
/// contract `Name`; a bare `Function` on the first (default) contract.
#[derive(Debug, Default)]
pub struct Router {
    contracts: Vec<Contract>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `contract`; the first one added is the default.
    pub fn contract(mut self, contract: Contract) -> Self {
        self.contracts.push(contract);
        self
    }

    /// The metadata document Fabric's contract APIs return for
    /// [`METADATA_FUNCTION`].
    pub fn metadata(&self) -> serde_json::Value {
        metadata(&self.contracts.iter().collect::<Vec<_>>())
    }

    /// Runs the function the arguments name.
    pub fn dispatch(&self, stub: &mut Stub) -> Result<Vec<u8>, ContractError> {
        dispatch(&self.contracts.iter().collect::<Vec<_>>(), stub)
    }
}

fn metadata(contracts: &[&Contract]) -> serde_json::Value {
    let contracts: serde_json::Map<String, serde_json::Value> = contracts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), c.metadata(i == 0)))
        .collect();
    serde_json::json!({
        "info": { "title": "weft contract", "version": env!("CARGO_PKG_VERSION") },
        "contracts": contracts,
    })
}

fn dispatch(contracts: &[&Contract], stub: &mut Stub) -> Result<Vec<u8>, ContractError> {
    let args = stub.args().to_vec();
    let Some((function, params)) = args.split_first() else {
        return Err(ContractError::new("no function name given"));
    };
    let function = std::str::from_utf8(function)
        .map_err(|_| ContractError::new("the function name is not UTF-8"))?;
    if function == METADATA_FUNCTION {
        return Ok(serde_json::to_vec(&metadata(contracts))?);
    }
    let (contract, function) = match function.split_once(':') {
        Some((name, function)) => {
            let contract = contracts.iter().find(|c| c.name == name).ok_or_else(|| {
                ContractError(format!("contract {name:?} not found in this chaincode"))
            })?;
            (contract, function)
        }
        None => {
            let contract = contracts.first();
            (
                contract.ok_or_else(|| ContractError::new("this chaincode has no contracts"))?,
                function,
            )
        }
    };
    contract.call(stub, function, params)
}

fn respond(outcome: Result<Vec<u8>, ContractError>) -> Response {
    match outcome {
        Ok(payload) => success(payload),
        Err(e) => error(e.0),
    }
}

impl Chaincode for Router {
    fn invoke(&self, stub: &mut Stub) -> Response {
        respond(self.dispatch(stub))
    }
}

impl Chaincode for Contract {
    fn invoke(&self, stub: &mut Stub) -> Response {
        respond(dispatch(&[self], stub))
    }
}
