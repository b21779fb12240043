//! Fabric's policies: who must sign for something to be allowed.
//!
//! - Signature policies in the language Fabric users write,
//!   `"AND('Org1MSP.peer', OR('Org2MSP.peer', 'Org3MSP.peer'))"` or
//!   `"OutOf(2, 'A.member', 'B.member', 'C.member')"`, parsed into
//!   `common.SignaturePolicyEnvelope` ([`parse_signature_policy`]) and compiled
//!   for evaluation ([`SignaturePolicy`]).
//! - Implicit meta policies (`"MAJORITY Endorsement"`, `"ANY Readers"`), which
//!   combine the same-named sub-policy of every organisation ([`ImplicitMeta`]).
//!
//! Evaluation follows Fabric's rule that one identity satisfies at most one
//! principal, and repeated signatures by one identity count once. Unlike
//! Fabric's greedy evaluator, weft searches for an assignment of identities to
//! principals, so the outcome does not depend on the order of signatures:
//! whenever any assignment satisfies the policy, it is satisfied.
//!
//! Invariant: pure functions over validated identities; signatures are checked
//! by the caller before identities reach a policy.

mod dsl;
mod implicit_meta;
mod signature;

pub use dsl::{ParseError, parse_signature_policy};
pub use implicit_meta::{ImplicitMeta, MetaRule};
pub use signature::{PolicyError, PolicySigner, SignaturePolicy};
