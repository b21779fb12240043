//! weft's certificate authority, compatible with Fabric CA's clients
//! (`fabric-ca-client`, the Node/Java/Go SDKs): `cainfo`, `enroll`,
//! `reenroll`, `register`, `revoke`, `gencrl`, `identities`,
//! `affiliations` and `certificates` over Fabric CA's REST API, with its
//! authentication (enrolment secrets, signed tokens), its registrar and
//! affiliation rules, and its attribute extension for attribute-based access
//! control.
//!
//! - [`config`]: `ca.yaml` and `weft ca init`;
//! - [`cert`]: CSRs, issued certificates, CRLs;
//! - [`store`]: the crash-safe registry;
//! - [`authority`]: the operations and who may call them;
//! - [`http`]: the REST API on the CA's port;
//! - [`node`]: the CA as a node (`weft ca start`), with its operations service.
//!
//! Not provided: Idemix credentials, HSM/PKCS#11 keys, LDAP registries,
//! intermediate CAs and multiple CAs per server.
//!
//! L2: it knows the file system, HTTP and TLS, and nothing of ledgers or
//! channels.

pub mod authority;
pub mod cert;
pub mod config;
pub mod error;
pub mod http;
pub mod node;
mod rights;
pub mod secret;
pub mod store;

pub use authority::{Authority, Reply, Request};
pub use config::{CaConfig, InitOptions};
pub use error::CaError;
pub use node::BoundCa;
