//! The channel's policy tree: every `ConfigPolicy` of every group, compiled
//! once, addressed by path (`/Channel/Writers`, `/Channel/Orderer/BlockValidation`,
//! `/Channel/Application/Org1MSP/Admins`).

use std::collections::BTreeMap;

use weft_msp::Identity;
use weft_policy::{ImplicitMeta, PolicySigner, SignaturePolicy};
use weft_protos::Message;
use weft_protos::common::{
    ConfigGroup, ImplicitMetaPolicy, SignaturePolicyEnvelope, policy::PolicyType,
};

use crate::{CHANNEL_GROUP, ConfigError};

/// Why a request did not satisfy a channel policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDenied {
    #[error("identity is not valid on this channel: {0}")]
    Identity(String),
    #[error("signature does not verify: {0}")]
    Signature(String),
    #[error("no policy {0} on this channel")]
    UnknownPolicy(String),
    #[error("the signer(s) do not satisfy policy {0}")]
    NotSatisfied(String),
}

#[derive(Debug)]
enum Compiled {
    Signature(SignaturePolicy),
    ImplicitMeta(ImplicitMeta),
}

#[derive(Debug, Default)]
struct Group {
    policies: BTreeMap<String, Compiled>,
    children: Vec<String>,
}

/// All policies of a config tree.
#[derive(Debug, Default)]
pub struct PolicyTree {
    groups: BTreeMap<String, Group>,
}

impl PolicyTree {
    pub(crate) fn compile(root: &ConfigGroup) -> Result<Self, ConfigError> {
        let mut tree = PolicyTree::default();
        tree.add(format!("/{CHANNEL_GROUP}"), root)?;
        Ok(tree)
    }

    fn add(&mut self, path: String, group: &ConfigGroup) -> Result<(), ConfigError> {
        let mut node = Group::default();
        for (name, config_policy) in &group.policies {
            let policy_path = format!("{path}/{name}");
            let error = |reason: String| ConfigError::Policy {
                path: policy_path.clone(),
                reason,
            };
            let policy = config_policy
                .policy
                .as_ref()
                .ok_or_else(|| error("empty policy".into()))?;
            let compiled = match PolicyType::try_from(policy.r#type) {
                Ok(PolicyType::Signature) => {
                    let envelope = SignaturePolicyEnvelope::decode(policy.value.as_slice())
                        .map_err(|e| error(e.to_string()))?;
                    Compiled::Signature(
                        SignaturePolicy::from_envelope(&envelope)
                            .map_err(|e| error(e.to_string()))?,
                    )
                }
                Ok(PolicyType::ImplicitMeta) => {
                    let meta = ImplicitMetaPolicy::decode(policy.value.as_slice())
                        .map_err(|e| error(e.to_string()))?;
                    Compiled::ImplicitMeta(ImplicitMeta::from_proto(&meta))
                }
                _ => {
                    return Err(error(format!(
                        "policy type {} is not supported",
                        policy.r#type
                    )));
                }
            };
            node.policies.insert(name.clone(), compiled);
        }
        for (name, child) in &group.groups {
            let child_path = format!("{path}/{name}");
            node.children.push(child_path.clone());
            self.add(child_path, child)?;
        }
        self.groups.insert(path, node);
        Ok(())
    }

    /// Whether a policy exists at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.split(path)
            .is_some_and(|(group, name)| group.policies.contains_key(name))
    }

    /// Evaluates the policy at `path` over identities whose signatures the
    /// caller has verified.
    pub fn evaluate(
        &self,
        path: &str,
        signers: &[std::sync::Arc<Identity>],
    ) -> Result<(), PolicyDenied> {
        let (group, name) = self
            .split(path)
            .ok_or_else(|| PolicyDenied::UnknownPolicy(path.to_owned()))?;
        if !group.policies.contains_key(name) {
            return Err(PolicyDenied::UnknownPolicy(path.to_owned()));
        }
        if self.satisfied(group, name, signers) {
            Ok(())
        } else {
            Err(PolicyDenied::NotSatisfied(path.to_owned()))
        }
    }

    fn split<'a>(&self, path: &'a str) -> Option<(&Group, &'a str)> {
        let (group_path, name) = path.rsplit_once('/')?;
        Some((self.groups.get(group_path)?, name))
    }

    fn satisfied<S: PolicySigner>(&self, group: &Group, name: &str, signers: &[S]) -> bool {
        match group.policies.get(name) {
            None => false,
            Some(Compiled::Signature(policy)) => policy.is_satisfied_by(signers),
            Some(Compiled::ImplicitMeta(meta)) => {
                let outcomes = group.children.iter().map(|child| {
                    self.groups
                        .get(child)
                        .is_some_and(|g| self.satisfied(g, &meta.sub_policy, signers))
                });
                meta.evaluate(outcomes.collect::<Vec<_>>())
            }
        }
    }
}
