//! Membership service providers: who may sign what, as Fabric decides it.
//!
//! An [`Msp`] is one organisation's trust anchor, built from the
//! `msp.FabricMSPConfig` that channel configuration carries (root and
//! intermediate CA certificates, admin certificates, revocation lists, NodeOUs).
//! An [`MspManager`] holds a channel's MSPs and turns a serialized identity
//! (`msp.SerializedIdentity` bytes from a header or endorsement) into a validated
//! [`Identity`]: chained to the MSP's roots, within its validity period at the
//! given time, not revoked, with its NodeOU role. Validated identities are cached,
//! since validating a certificate chain costs about 170 µs and a cache hit well
//! under a microsecond. [`Principal`]s (`Org1MSP.peer`, …) are what policies name;
//! [`Identity::satisfies`] matches them.
//!
//! Invariant: time is a parameter (`now_unix_seconds`), never read from the clock;
//! no file system (loading an MSP directory lives in `weft-material`), no async.

mod error;
mod identity;
mod manager;
mod msp;
mod principal;
mod time;

pub use error::{IdentityError, MspError, PrincipalError};
pub use identity::{Identity, NodeRole};
pub use manager::{LocalRevocations, MspManager, MspManagerConfig};
pub use msp::Msp;
pub use principal::{MspRole, Principal};
