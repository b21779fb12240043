//! Private data on the peer: the collections a chaincode definition
//! declares, and the transient store that holds endorsed private read-write
//! sets until their transaction commits.
//!
//! Fabric's rules, which weft follows:
//! - a collection's members are the organisations its `member_orgs_policy`
//!   names; their peers hold the values, every other peer only the hashes;
//! - every channel organisation has an implicit collection
//!   `_implicit_org_<MSP id>` with that organisation as its only member;
//! - `member_only_read` / `member_only_write` refuse reads / writes by
//!   clients of other organisations at endorsement;
//! - an endorsing peer keeps the private read-write set in its transient
//!   store and sends it to peers of member organisations
//!   (`required_peer_count` must acknowledge, at most
//!   `maximum_peer_count` are sent it); a committing member peer takes it
//!   from its transient store, or pulls it from other member peers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use prost::Message;
use weft_policy::SignaturePolicy;
use weft_protos::peer::collection_config::Payload as CollectionPayload;
use weft_protos::peer::collection_policy_config::Payload as MemberPolicy;
use weft_protos::peer::{CollectionConfigPackage, StaticCollectionConfig};
use weft_protos::rwset::TxPvtReadWriteSet;

use crate::lifecycle;

/// The prefix of an organisation's implicit collection.
pub const IMPLICIT_PREFIX: &str = "_implicit_org_";

/// One private data collection of a chaincode.
#[derive(Debug, Clone)]
pub struct Collection {
    pub name: String,
    /// The member organisations' MSP ids.
    pub members: BTreeSet<String>,
    pub required_peer_count: usize,
    pub maximum_peer_count: usize,
    pub member_only_read: bool,
    pub member_only_write: bool,
    /// Replaces the chaincode's policy for writes to this collection.
    pub endorsement_policy: Option<SignaturePolicy>,
}

impl Collection {
    /// `_implicit_org_<msp_id>`: that organisation alone.
    pub fn implicit(msp_id: &str) -> Collection {
        Collection {
            name: format!("{IMPLICIT_PREFIX}{msp_id}"),
            members: BTreeSet::from([msp_id.to_owned()]),
            required_peer_count: 0,
            maximum_peer_count: 0,
            member_only_read: false,
            member_only_write: false,
            endorsement_policy: None,
        }
    }

    pub fn is_member(&self, msp_id: &str) -> bool {
        self.members.contains(msp_id)
    }

    /// Checks `creator` may read (`write`: write) the collection.
    pub fn check_access(
        &self,
        chaincode: &str,
        creator_msp: &str,
        write: bool,
    ) -> Result<(), String> {
        let restricted = if write {
            self.member_only_write
        } else {
            self.member_only_read
        };
        if restricted && !self.is_member(creator_msp) {
            return Err(format!(
                "tx creator from {creator_msp} does not have {} access permission on privatedata \
                 in chaincodeName:{chaincode} collectionName: {}",
                if write { "write" } else { "read" },
                self.name
            ));
        }
        Ok(())
    }
}

/// A chaincode's collections: those its definition declares, plus every
/// channel organisation's implicit collection.
pub fn collections(
    package: Option<&CollectionConfigPackage>,
    orgs: &[String],
) -> Result<BTreeMap<String, Collection>, String> {
    let mut collections: BTreeMap<String, Collection> = orgs
        .iter()
        .map(|org| {
            let implicit = Collection::implicit(org);
            (implicit.name.clone(), implicit)
        })
        .collect();
    for config in package.map(|p| p.config.as_slice()).unwrap_or_default() {
        let Some(CollectionPayload::StaticCollectionConfig(config)) = &config.payload else {
            return Err("a collection config without a static collection".into());
        };
        let collection = declared(config, orgs)?;
        if collections
            .insert(collection.name.clone(), collection)
            .is_some()
        {
            return Err(format!(
                "collection {:?} is defined twice (or is an implicit collection's name)",
                config.name
            ));
        }
    }
    Ok(collections)
}

/// Fabric's collection name rule.
fn check_collection_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid collection name {name:?}: a letter or digit, then letters, digits, '-', '_' or '.'"
        ))
    }
}

fn declared(config: &StaticCollectionConfig, orgs: &[String]) -> Result<Collection, String> {
    let name = &config.name;
    check_collection_name(name)?;
    let what = |reason: String| format!("collection {name}: {reason}");
    let envelope = match config
        .member_orgs_policy
        .as_ref()
        .and_then(|p| p.payload.as_ref())
    {
        Some(MemberPolicy::SignaturePolicy(envelope)) => envelope,
        None => return Err(what("it has no member organisations policy".into())),
    };
    let policy = SignaturePolicy::from_envelope(envelope).map_err(|e| what(e.to_string()))?;
    let members: BTreeSet<String> = policy
        .principals()
        .iter()
        .map(|p| p.msp_id().to_owned())
        .collect();
    if let Some(unknown) = members.iter().find(|m| !orgs.contains(m)) {
        return Err(what(format!(
            "member {unknown} is not an organisation of the channel ({})",
            orgs.join(", ")
        )));
    }
    let count = |value: i32, field: &str| {
        usize::try_from(value).map_err(|_| what(format!("{field} {value} is negative")))
    };
    let required_peer_count = count(config.required_peer_count, "requiredPeerCount")?;
    let maximum_peer_count = count(config.maximum_peer_count, "maxPeerCount")?;
    if maximum_peer_count < required_peer_count {
        return Err(what(format!(
            "maxPeerCount {maximum_peer_count} is below requiredPeerCount {required_peer_count}"
        )));
    }
    if config.block_to_live > 0 {
        // Accepting it without purging would keep data longer than asked.
        return Err(what(format!(
            "blockToLive {} is not supported yet (this peer does not purge private data); use 0 to keep the data",
            config.block_to_live
        )));
    }
    let endorsement_policy = match &config.endorsement_policy {
        None => None,
        Some(policy) => Some(
            lifecycle::endorsement_policy(&policy.encode_to_vec(), orgs)
                .map_err(|e| what(format!("endorsement policy: {e}")))?,
        ),
    };
    Ok(Collection {
        name: name.clone(),
        members,
        required_peer_count,
        maximum_peer_count,
        member_only_read: config.member_only_read,
        member_only_write: config.member_only_write,
        endorsement_policy,
    })
}

/// Endorsed private read-write sets waiting for their transactions to
/// commit, by tx id. Bounded: the oldest entries go first when full
/// (their transactions most likely never reached the orderer).
#[derive(Debug)]
pub struct TransientStore {
    inner: Mutex<Transient>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Transient {
    sets: HashMap<String, TxPvtReadWriteSet>,
    order: VecDeque<String>,
}

impl TransientStore {
    pub fn new(capacity: usize) -> Self {
        TransientStore {
            inner: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Transient> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `set` for `tx_id`, merging with collections already held.
    pub fn put(&self, tx_id: &str, set: TxPvtReadWriteSet) {
        let mut inner = self.lock();
        match inner.sets.get_mut(tx_id) {
            Some(held) => merge(held, set),
            None => {
                while inner.sets.len() >= self.capacity {
                    let Some(oldest) = inner.order.pop_front() else {
                        break;
                    };
                    inner.sets.remove(&oldest);
                }
                inner.sets.insert(tx_id.to_owned(), set);
                inner.order.push_back(tx_id.to_owned());
            }
        }
    }

    pub fn get(&self, tx_id: &str) -> Option<TxPvtReadWriteSet> {
        self.lock().sets.get(tx_id).cloned()
    }

    /// Forgets the sets of committed transactions.
    pub fn remove<'a>(&self, tx_ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        if inner.sets.is_empty() {
            return;
        }
        for tx_id in tx_ids {
            inner.sets.remove(tx_id);
        }
        let Transient { sets, order } = &mut *inner;
        order.retain(|id| sets.contains_key(id));
    }

    pub fn len(&self) -> usize {
        self.lock().sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Adds `more`'s collections to `held` (a collection already held is kept).
pub fn merge(held: &mut TxPvtReadWriteSet, more: TxPvtReadWriteSet) {
    for namespace in more.ns_pvt_rwset {
        match held
            .ns_pvt_rwset
            .iter_mut()
            .find(|n| n.namespace == namespace.namespace)
        {
            Some(existing) => {
                for collection in namespace.collection_pvt_rwset {
                    if !existing
                        .collection_pvt_rwset
                        .iter()
                        .any(|c| c.collection_name == collection.collection_name)
                    {
                        existing.collection_pvt_rwset.push(collection);
                    }
                }
            }
            None => held.ns_pvt_rwset.push(namespace),
        }
    }
}

/// `set` reduced to the collections `keep(namespace, collection)` accepts;
/// None when nothing is left.
pub fn filter(
    set: &TxPvtReadWriteSet,
    mut keep: impl FnMut(&str, &str) -> bool,
) -> Option<TxPvtReadWriteSet> {
    let mut filtered = TxPvtReadWriteSet {
        data_model: set.data_model,
        ns_pvt_rwset: Vec::new(),
    };
    for namespace in &set.ns_pvt_rwset {
        let collections: Vec<_> = namespace
            .collection_pvt_rwset
            .iter()
            .filter(|c| keep(&namespace.namespace, &c.collection_name))
            .cloned()
            .collect();
        if !collections.is_empty() {
            filtered
                .ns_pvt_rwset
                .push(weft_protos::rwset::NsPvtReadWriteSet {
                    namespace: namespace.namespace.clone(),
                    collection_pvt_rwset: collections,
                });
        }
    }
    (!filtered.ns_pvt_rwset.is_empty()).then_some(filtered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_protos::peer::{CollectionConfig, CollectionPolicyConfig};
    use weft_protos::rwset::{CollectionPvtReadWriteSet, NsPvtReadWriteSet};

    fn orgs() -> Vec<String> {
        vec!["Org1MSP".into(), "Org2MSP".into()]
    }

    fn config(name: &str, policy: &str, required: i32, max: i32) -> CollectionConfig {
        CollectionConfig {
            payload: Some(CollectionPayload::StaticCollectionConfig(
                StaticCollectionConfig {
                    name: name.into(),
                    member_orgs_policy: Some(CollectionPolicyConfig {
                        payload: Some(MemberPolicy::SignaturePolicy(
                            weft_policy::parse_signature_policy(policy).expect("policy"),
                        )),
                    }),
                    required_peer_count: required,
                    maximum_peer_count: max,
                    member_only_read: true,
                    ..Default::default()
                },
            )),
        }
    }

    #[test]
    fn declared_and_implicit_collections() {
        let package = CollectionConfigPackage {
            config: vec![config("private", "OR('Org1MSP.member')", 0, 1)],
        };
        let all = collections(Some(&package), &orgs()).expect("collections");
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["_implicit_org_Org1MSP", "_implicit_org_Org2MSP", "private"]
        );
        let private = &all["private"];
        assert!(private.is_member("Org1MSP") && !private.is_member("Org2MSP"));
        assert!(private.check_access("cc", "Org1MSP", false).is_ok());
        let refused = private
            .check_access("cc", "Org2MSP", false)
            .expect_err("member only read");
        assert!(refused.contains("does not have read access"), "{refused}");
        assert!(private.check_access("cc", "Org2MSP", true).is_ok());
        assert!(all["_implicit_org_Org2MSP"].is_member("Org2MSP"));
    }

    #[test]
    fn bad_collections_are_refused_with_the_reason() {
        let refused = |configs: Vec<CollectionConfig>| {
            collections(Some(&CollectionConfigPackage { config: configs }), &orgs())
                .expect_err("refused")
        };
        assert!(refused(vec![config("a b", "OR('Org1MSP.member')", 0, 1)]).contains("invalid"));
        assert!(
            refused(vec![config("c", "OR('Org3MSP.member')", 0, 1)])
                .contains("Org3MSP is not an organisation")
        );
        assert!(refused(vec![config("c", "OR('Org1MSP.member')", 2, 1)]).contains("maxPeerCount"));
        let mut purged = config("c", "OR('Org1MSP.member')", 0, 1);
        if let Some(CollectionPayload::StaticCollectionConfig(c)) = &mut purged.payload {
            c.block_to_live = 100;
        }
        assert!(refused(vec![purged]).contains("blockToLive 100 is not supported"));
        assert!(
            refused(vec![
                config("c", "OR('Org1MSP.member')", 0, 1),
                config("c", "OR('Org2MSP.member')", 0, 1)
            ])
            .contains("defined twice")
        );
    }

    fn set(namespace: &str, collections: &[&str]) -> TxPvtReadWriteSet {
        TxPvtReadWriteSet {
            data_model: 0,
            ns_pvt_rwset: vec![NsPvtReadWriteSet {
                namespace: namespace.into(),
                collection_pvt_rwset: collections
                    .iter()
                    .map(|c| CollectionPvtReadWriteSet {
                        collection_name: (*c).into(),
                        rwset: c.as_bytes().to_vec(),
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn the_transient_store_merges_filters_and_stays_bounded() {
        let store = TransientStore::new(2);
        store.put("t1", set("cc", &["a"]));
        store.put("t1", set("cc", &["b"]));
        store.put("t1", set("other", &["c"]));
        let held = store.get("t1").expect("held");
        assert_eq!(held.ns_pvt_rwset[0].collection_pvt_rwset.len(), 2);
        assert_eq!(held.ns_pvt_rwset.len(), 2);
        let only_b = filter(&held, |_, c| c == "b").expect("b");
        assert_eq!(only_b, set("cc", &["b"]));
        assert!(filter(&held, |_, _| false).is_none());
        store.put("t2", set("cc", &["a"]));
        store.put("t3", set("cc", &["a"]));
        assert!(store.get("t1").is_none(), "the oldest went first");
        assert_eq!(store.len(), 2);
        store.remove(["t2", "t3"]);
        assert!(store.is_empty());
    }
}
