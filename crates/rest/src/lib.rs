//! `weft rest`: the single endpoint applications in any language reach the
//! chain through — JSON over HTTP, `Authorization: Bearer <key>`:
//!
//! - `POST /api/v1/channels/{channel}/chaincodes/{chaincode}/transactions`
//!   (`{"function","args","transient"}` → on commit `{"txId","status",
//!   "blockNumber","result"}`; `?async=true` → 202 `{"txId"}`);
//! - `POST …/chaincodes/{chaincode}/query` → `{"result"}`;
//! - `GET /api/v1/channels/{channel}/transactions/{txId}`;
//! - `GET /api/v1/channels/{channel}/events?chaincode=…&since=…` (SSE);
//! - `GET /api/v1/openapi.json`.
//!
//! [`config`]: `rest.yaml`; [`keys`]: API keys (hashed, revocable);
//! [`server`]: routes and calls, through `weft-sdk` (so the SDK's retry
//! rules hold: read conflicts retried, lost answers checked by transaction
//! id); [`openapi`]: the document; [`error`]: error answers.
//!
//! L2, on top of `weft-sdk`.

pub mod config;
pub mod error;
pub mod keys;
pub mod openapi;
pub mod server;

pub use config::RestConfig;
pub use server::{Rest, router, serve};
