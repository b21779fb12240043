//! Compiled signature policies and their evaluation.

use std::fmt;

use weft_msp::{Identity, Principal, PrincipalError};
use weft_protos::common::{SignaturePolicyEnvelope, signature_policy};

use crate::dsl::{ParseError, parse_signature_policy};

/// Distinct signers a policy is evaluated over (endorsements of one transaction).
pub const SIGNERS_MAX: usize = 64;
/// Nodes in one policy tree.
const NODES_MAX: usize = 1024;
/// Search steps before evaluation gives up; deterministic, so every peer agrees.
const STEPS_MAX: u32 = 200_000;

/// Anything a policy can be evaluated over: a validated identity, or a test double.
pub trait PolicySigner {
    /// Whether this signer satisfies `principal`.
    fn satisfies(&self, principal: &Principal) -> bool;
    /// Bytes that identify the signer; signers with equal keys count once.
    fn identity_key(&self) -> &[u8];
}

impl PolicySigner for Identity {
    fn satisfies(&self, principal: &Principal) -> bool {
        Identity::satisfies(self, principal)
    }

    fn identity_key(&self) -> &[u8] {
        self.certificate_der()
    }
}

impl<T: PolicySigner + ?Sized> PolicySigner for &T {
    fn satisfies(&self, principal: &Principal) -> bool {
        (**self).satisfies(principal)
    }

    fn identity_key(&self) -> &[u8] {
        (**self).identity_key()
    }
}

impl<T: PolicySigner + ?Sized> PolicySigner for std::sync::Arc<T> {
    fn satisfies(&self, principal: &Principal) -> bool {
        (**self).satisfies(principal)
    }

    fn identity_key(&self) -> &[u8] {
        (**self).identity_key()
    }
}

/// Why a policy could not be built or was not satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("signature policy has no rule")]
    MissingRule,
    #[error("signature policy refers to identity {index}, but only {count} are defined")]
    IdentityIndexOutOfRange { index: i32, count: usize },
    #[error("signature policy principal {index}: {source}")]
    Principal {
        index: usize,
        #[source]
        source: PrincipalError,
    },
    #[error("signature policy has more than {NODES_MAX} rules")]
    TooLarge,
    #[error("policy {policy} is not satisfied by the {signers} distinct signer(s)")]
    NotSatisfied { policy: String, signers: usize },
    #[error(
        "{signers} distinct signers exceed the limit of {SIGNERS_MAX} for one policy evaluation"
    )]
    TooManySigners { signers: usize },
    #[error("policy {policy} is too complex to evaluate over {signers} signers")]
    TooComplex { policy: String, signers: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    SignedBy(usize),
    NOutOf { n: usize, rules: Vec<Node> },
}

/// A signature policy ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignaturePolicy {
    principals: Vec<Principal>,
    rule: Node,
}

impl SignaturePolicy {
    /// Parses the policy language (`"AND('Org1MSP.peer','Org2MSP.peer')"`).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        Self::from_envelope(&parse_signature_policy(text)?)
    }

    /// Compiles a `common.SignaturePolicyEnvelope`, checking every index and principal.
    pub fn from_envelope(envelope: &SignaturePolicyEnvelope) -> Result<Self, PolicyError> {
        let principals = envelope
            .identities
            .iter()
            .enumerate()
            .map(|(index, p)| {
                Principal::from_proto(p).map_err(|source| PolicyError::Principal { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rule = envelope.rule.as_ref().ok_or(PolicyError::MissingRule)?;
        let mut nodes = 0;
        let rule = compile(rule, principals.len(), &mut nodes)?;
        Ok(Self { principals, rule })
    }

    /// `n` of `principals`, each to be satisfied by a different signer:
    /// built directly, so no MSP id from a config block has to survive the
    /// policy language's quoting.
    pub fn n_out_of(n: usize, principals: Vec<Principal>) -> Result<Self, PolicyError> {
        if principals.len() + 1 > NODES_MAX {
            return Err(PolicyError::TooLarge);
        }
        let rules = (0..principals.len()).map(Node::SignedBy).collect();
        Ok(Self {
            principals,
            rule: Node::NOutOf { n, rules },
        })
    }

    /// A policy no set of signers satisfies.
    pub fn nobody() -> Self {
        Self {
            principals: Vec::new(),
            rule: Node::NOutOf {
                n: 1,
                rules: Vec::new(),
            },
        }
    }

    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// Whether `signers` satisfy the policy. Each distinct signer satisfies at
    /// most one principal; duplicates (same identity) count once.
    pub fn evaluate<S: PolicySigner>(&self, signers: &[S]) -> Result<(), PolicyError> {
        let mut distinct: Vec<&S> = Vec::with_capacity(signers.len());
        for signer in signers {
            if !distinct
                .iter()
                .any(|d| d.identity_key() == signer.identity_key())
            {
                distinct.push(signer);
            }
        }
        if distinct.len() > SIGNERS_MAX {
            return Err(PolicyError::TooManySigners {
                signers: distinct.len(),
            });
        }
        let matches: Vec<u64> = self
            .principals
            .iter()
            .map(|principal| {
                distinct
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.satisfies(principal))
                    .fold(0u64, |mask, (i, _)| mask | (1 << i))
            })
            .collect();
        let mut search = Search {
            matches: &matches,
            steps: 0,
        };
        if search.node(&self.rule, 0, &mut |_, _| true) {
            Ok(())
        } else if search.steps > STEPS_MAX {
            Err(PolicyError::TooComplex {
                policy: self.to_string(),
                signers: distinct.len(),
            })
        } else {
            Err(PolicyError::NotSatisfied {
                policy: self.to_string(),
                signers: distinct.len(),
            })
        }
    }

    /// The policy's principal sets, as Fabric's discovery computes them:
    /// each a minimal combination of principals (indices into
    /// [`principals`](Self::principals), a principal repeated when the rule
    /// needs it signed by several) that satisfies the rule, one signer per
    /// entry. At most `limit` sets; `None` if there are more.
    pub fn principal_sets(&self, limit: usize) -> Option<Vec<Vec<usize>>> {
        fn sets(node: &Node, limit: usize) -> Option<Vec<Vec<usize>>> {
            match node {
                Node::SignedBy(index) => Some(vec![vec![*index]]),
                Node::NOutOf { n, rules } => {
                    let children: Vec<Vec<Vec<usize>>> = rules
                        .iter()
                        .map(|rule| sets(rule, limit))
                        .collect::<Option<_>>()?;
                    let mut out: Vec<Vec<usize>> = Vec::new();
                    // Every choice of `n` children, and within it every
                    // combination of one set per chosen child.
                    let mut choice: Vec<usize> = (0..*n).collect();
                    if *n > children.len() {
                        return Some(Vec::new());
                    }
                    loop {
                        let mut partial: Vec<Vec<usize>> = vec![Vec::new()];
                        for &child in &choice {
                            let mut next = Vec::new();
                            for prefix in &partial {
                                for set in &children[child] {
                                    let mut merged = prefix.clone();
                                    merged.extend_from_slice(set);
                                    next.push(merged);
                                    if next.len() > limit {
                                        return None;
                                    }
                                }
                            }
                            partial = next;
                        }
                        for mut set in partial {
                            set.sort_unstable();
                            if !out.contains(&set) {
                                out.push(set);
                            }
                            if out.len() > limit {
                                return None;
                            }
                        }
                        // The next combination of `n` out of the children.
                        let Some(i) = (0..*n).rev().find(|&i| choice[i] < children.len() - n + i)
                        else {
                            break;
                        };
                        choice[i] += 1;
                        for j in i + 1..*n {
                            choice[j] = choice[j - 1] + 1;
                        }
                    }
                    Some(out)
                }
            }
        }
        sets(&self.rule, limit)
    }

    /// Shorthand for `evaluate(..).is_ok()`.
    pub fn is_satisfied_by<S: PolicySigner>(&self, signers: &[S]) -> bool {
        self.evaluate(signers).is_ok()
    }
}

fn compile(
    rule: &weft_protos::common::SignaturePolicy,
    principals: usize,
    nodes: &mut usize,
) -> Result<Node, PolicyError> {
    *nodes += 1;
    if *nodes > NODES_MAX {
        return Err(PolicyError::TooLarge);
    }
    match &rule.r#type {
        Some(signature_policy::Type::SignedBy(index)) => match usize::try_from(*index) {
            Ok(i) if i < principals => Ok(Node::SignedBy(i)),
            _ => Err(PolicyError::IdentityIndexOutOfRange {
                index: *index,
                count: principals,
            }),
        },
        Some(signature_policy::Type::NOutOf(gate)) => Ok(Node::NOutOf {
            // Fabric treats n <= 0 as always satisfied.
            n: usize::try_from(gate.n).unwrap_or(0),
            rules: gate
                .rules
                .iter()
                .map(|r| compile(r, principals, nodes))
                .collect::<Result<_, _>>()?,
        }),
        None => Err(PolicyError::MissingRule),
    }
}

/// Backtracking search for an assignment of distinct signers to principals.
/// `k` continues with the signers still unused; returning true ends the search.
struct Search<'a> {
    /// Per principal: the bitmask of signers that satisfy it.
    matches: &'a [u64],
    steps: u32,
}

type Continuation<'k, 'a> = dyn FnMut(&mut Search<'a>, u64) -> bool + 'k;

impl<'a> Search<'a> {
    fn node(&mut self, node: &Node, used: u64, k: &mut Continuation<'_, 'a>) -> bool {
        self.steps += 1;
        if self.steps > STEPS_MAX {
            return false;
        }
        match node {
            Node::SignedBy(principal) => {
                let mut candidates = self.matches[*principal] & !used;
                while candidates != 0 {
                    let lowest = candidates & candidates.wrapping_neg();
                    candidates &= candidates - 1;
                    if k(self, used | lowest) {
                        return true;
                    }
                }
                false
            }
            Node::NOutOf { n, rules } => self.gate(rules, 0, *n, used, k),
        }
    }

    fn gate(
        &mut self,
        rules: &[Node],
        satisfied: usize,
        n: usize,
        used: u64,
        k: &mut Continuation<'_, 'a>,
    ) -> bool {
        if satisfied >= n {
            return k(self, used);
        }
        let Some((first, rest)) = rules.split_first() else {
            return false;
        };
        if rules.len() < n - satisfied {
            return false;
        }
        self.node(first, used, &mut |search, used| {
            search.gate(rest, satisfied + 1, n, used, k)
        }) || self.gate(rest, satisfied, n, used, k)
    }
}

impl fmt::Display for SignaturePolicy {
    /// Renders the policy in the policy language.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn render(
            node: &Node,
            principals: &[Principal],
            f: &mut fmt::Formatter<'_>,
        ) -> fmt::Result {
            match node {
                Node::SignedBy(i) => write!(f, "'{}'", principals[*i]),
                Node::NOutOf { n, rules } => {
                    if *n == rules.len() && *n > 1 {
                        f.write_str("AND(")?;
                    } else if *n == 1 && rules.len() > 1 {
                        f.write_str("OR(")?;
                    } else {
                        write!(f, "OutOf({n}, ")?;
                    }
                    for (i, rule) in rules.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        render(rule, principals, f)?;
                    }
                    f.write_str(")")
                }
            }
        }
        render(&self.rule, &self.principals, f)
    }
}

#[cfg(test)]
mod principal_set_tests {
    use super::*;

    fn names(policy: &SignaturePolicy, sets: Vec<Vec<usize>>) -> Vec<Vec<String>> {
        sets.into_iter()
            .map(|set| {
                set.into_iter()
                    .map(|i| policy.principals()[i].to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn principal_sets_enumerate_the_minimal_combinations() {
        let and = SignaturePolicy::parse("AND('Org1MSP.peer','Org2MSP.peer')").expect("policy");
        assert_eq!(
            names(&and, and.principal_sets(100).expect("sets")),
            [["Org1MSP.peer", "Org2MSP.peer"]]
        );
        let or = SignaturePolicy::parse("OR('Org1MSP.peer','Org2MSP.peer')").expect("policy");
        assert_eq!(
            names(&or, or.principal_sets(100).expect("sets")),
            [["Org1MSP.peer"], ["Org2MSP.peer"]]
        );
        let two_of_three = SignaturePolicy::parse(
            "OutOf(2, 'Org1MSP.member', 'Org2MSP.member', 'Org3MSP.member')",
        )
        .expect("policy");
        assert_eq!(two_of_three.principal_sets(100).expect("sets").len(), 3);
        let nested =
            SignaturePolicy::parse("AND('Org1MSP.peer', OR('Org2MSP.peer','Org3MSP.peer'))")
                .expect("policy");
        assert_eq!(nested.principal_sets(100).expect("sets").len(), 2);
        assert_eq!(two_of_three.principal_sets(2), None, "bounded");
        assert!(
            SignaturePolicy::nobody()
                .principal_sets(10)
                .expect("sets")
                .is_empty()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weft_msp::MspRole;

    /// A signer of `msp` with `role`; `id` tells signers apart.
    #[derive(Debug, Clone)]
    struct Fake {
        key: [u8; 2],
        msp: &'static str,
        role: MspRole,
    }

    fn fake(id: u8, msp: &'static str, role: MspRole) -> Fake {
        Fake {
            key: [id, 0],
            msp,
            role,
        }
    }

    impl PolicySigner for Fake {
        fn satisfies(&self, principal: &Principal) -> bool {
            match principal {
                Principal::Role { msp_id, role } => {
                    msp_id == self.msp && (*role == MspRole::Member || *role == self.role)
                }
                _ => false,
            }
        }

        fn identity_key(&self) -> &[u8] {
            &self.key
        }
    }

    #[test]
    fn table() {
        use MspRole::*;
        let a_peer = fake(1, "A", Peer);
        let a_peer2 = fake(2, "A", Peer);
        let a_client = fake(3, "A", Client);
        let a_admin = fake(4, "A", Admin);
        let b_peer = fake(5, "B", Peer);
        let c_peer = fake(6, "C", Peer);
        let cases: Vec<(&str, Vec<&Fake>, bool)> = vec![
            ("AND('A.peer','B.peer')", vec![&a_peer, &b_peer], true),
            ("AND('A.peer','B.peer')", vec![&a_peer], false),
            ("AND('A.peer','B.peer')", vec![&b_peer, &a_peer], true),
            ("OR('A.peer','B.peer')", vec![&b_peer], true),
            ("OR('A.peer','B.peer')", vec![&c_peer], false),
            ("OR('A.peer','B.peer')", vec![], false),
            ("'A.member'", vec![&a_client], true),
            ("'A.client'", vec![&a_peer], false),
            ("'A.admin'", vec![&a_admin], true),
            // One identity satisfies one principal only.
            ("AND('A.member','A.member')", vec![&a_peer], false),
            ("AND('A.member','A.member')", vec![&a_peer, &a_peer], false),
            ("AND('A.member','A.member')", vec![&a_peer, &a_peer2], true),
            // Order of signatures does not matter (Fabric's greedy evaluator fails the first).
            ("AND('A.member','A.peer')", vec![&a_peer, &a_client], true),
            ("AND('A.member','A.peer')", vec![&a_client, &a_peer], true),
            (
                "OutOf(2,'A.peer','B.peer','C.peer')",
                vec![&a_peer, &c_peer],
                true,
            ),
            ("OutOf(2,'A.peer','B.peer','C.peer')", vec![&c_peer], false),
            (
                "OutOf(3,'A.peer','B.peer','C.peer')",
                vec![&a_peer, &b_peer, &c_peer],
                true,
            ),
            (
                "AND('A.peer', OR('B.peer', 'C.peer'))",
                vec![&a_peer, &c_peer],
                true,
            ),
            (
                "AND('A.peer', OR('B.peer', 'C.peer'))",
                vec![&b_peer, &c_peer],
                false,
            ),
        ];
        for (text, signers, expected) in cases {
            let policy = SignaturePolicy::parse(text).expect(text);
            let outcome = policy.evaluate(&signers);
            assert_eq!(
                outcome.is_ok(),
                expected,
                "{text} over {signers:?}: {outcome:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_policy() {
        let policy = SignaturePolicy::parse("AND('Org1MSP.peer','Org2MSP.peer')").expect("parse");
        let error = policy
            .evaluate(&[fake(1, "Org1MSP", MspRole::Peer)])
            .expect_err("unsatisfied");
        assert_eq!(
            error.to_string(),
            "policy AND('Org1MSP.peer', 'Org2MSP.peer') is not satisfied by the 1 distinct signer(s)"
        );
    }

    #[test]
    fn envelopes_with_bad_indices_are_refused() {
        let mut envelope = parse_signature_policy("AND('A.peer','B.peer')").expect("parse");
        envelope.identities.pop();
        assert_eq!(
            SignaturePolicy::from_envelope(&envelope),
            Err(PolicyError::IdentityIndexOutOfRange { index: 1, count: 1 })
        );
        envelope.rule = None;
        assert_eq!(
            SignaturePolicy::from_envelope(&envelope),
            Err(PolicyError::MissingRule)
        );
    }

    #[test]
    fn display_round_trips_through_the_parser() {
        for text in [
            "AND('A.peer', 'B.peer')",
            "OR('A.peer', AND('B.admin', 'C.client'))",
            "OutOf(2, 'A.peer', 'B.peer', 'C.peer')",
            "'A.member'",
        ] {
            let policy = SignaturePolicy::parse(text).expect(text);
            assert_eq!(policy.to_string(), text);
            assert_eq!(
                SignaturePolicy::parse(&policy.to_string()).expect("reparse"),
                policy
            );
        }
    }

    // ---- property tests -------------------------------------------------

    const MSPS: [&str; 3] = ["A", "B", "C"];

    fn principal_text() -> impl Strategy<Value = String> {
        (
            0..3usize,
            prop::sample::select(vec!["member", "peer", "client", "admin"]),
        )
            .prop_map(|(m, role)| format!("'{}.{role}'", MSPS[m]))
    }

    fn policy_text() -> impl Strategy<Value = String> {
        principal_text().prop_recursive(3, 12, 4, |inner| {
            prop::collection::vec(inner, 1..4).prop_flat_map(|rules| {
                let len = rules.len();
                (1..=len).prop_map(move |n| format!("OutOf({n}, {})", rules.join(", ")))
            })
        })
    }

    /// Signers drawn from a fixed population, so equal keys mean equal attributes.
    fn signer() -> impl Strategy<Value = Fake> {
        const ROLES: [MspRole; 3] = [MspRole::Peer, MspRole::Client, MspRole::Admin];
        (0..18u8).prop_map(|id| Fake {
            key: [id, 0],
            msp: MSPS[usize::from(id % 3)],
            role: ROLES[usize::from(id / 3 % 3)],
        })
    }

    /// Independent model: try every way of giving each leaf a distinct signer (or none).
    fn model(policy: &SignaturePolicy, signers: &[Fake]) -> bool {
        let mut distinct: Vec<&Fake> = Vec::new();
        for s in signers {
            if !distinct.iter().any(|d| d.key == s.key) {
                distinct.push(s);
            }
        }
        fn leaves(node: &Node, out: &mut Vec<usize>) {
            match node {
                Node::SignedBy(p) => out.push(*p),
                Node::NOutOf { rules, .. } => rules.iter().for_each(|r| leaves(r, out)),
            }
        }
        fn eval(node: &Node, assignment: &[bool], next: &mut usize) -> bool {
            match node {
                Node::SignedBy(_) => {
                    *next += 1;
                    assignment[*next - 1]
                }
                Node::NOutOf { n, rules } => {
                    rules.iter().filter(|r| eval(r, assignment, next)).count() >= *n
                }
            }
        }
        let mut leaf_principals = Vec::new();
        leaves(&policy.rule, &mut leaf_principals);
        fn assign(
            i: usize,
            leaf_principals: &[usize],
            policy: &SignaturePolicy,
            distinct: &[&Fake],
            taken: &mut Vec<bool>,
            assignment: &mut Vec<bool>,
        ) -> bool {
            if i == leaf_principals.len() {
                return eval(&policy.rule, assignment, &mut 0);
            }
            assignment.push(false);
            if assign(i + 1, leaf_principals, policy, distinct, taken, assignment) {
                return true;
            }
            assignment.pop();
            for (s, signer) in distinct.iter().enumerate() {
                if !taken[s] && signer.satisfies(&policy.principals[leaf_principals[i]]) {
                    taken[s] = true;
                    assignment.push(true);
                    let ok = assign(i + 1, leaf_principals, policy, distinct, taken, assignment);
                    assignment.pop();
                    taken[s] = false;
                    if ok {
                        return true;
                    }
                }
            }
            false
        }
        assign(
            0,
            &leaf_principals,
            policy,
            &distinct,
            &mut vec![false; distinct.len()],
            &mut Vec::new(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn evaluation_agrees_with_the_exhaustive_model(text in policy_text(), signers in prop::collection::vec(signer(), 0..5)) {
            let policy = SignaturePolicy::parse(&text)?;
            prop_assert_eq!(policy.is_satisfied_by(&signers), model(&policy, &signers), "{}", text);
        }

        #[test]
        fn adding_a_signature_never_unsatisfies(text in policy_text(), signers in prop::collection::vec(signer(), 0..5), extra in signer(), at in 0..6usize) {
            let policy = SignaturePolicy::parse(&text)?;
            if policy.is_satisfied_by(&signers) {
                let mut more = signers.clone();
                more.insert(at.min(more.len()), extra);
                prop_assert!(policy.is_satisfied_by(&more), "{} lost satisfaction", text);
            }
        }

        #[test]
        fn signature_order_does_not_matter(text in policy_text(), mut signers in prop::collection::vec(signer(), 0..5)) {
            let policy = SignaturePolicy::parse(&text)?;
            let before = policy.is_satisfied_by(&signers);
            signers.reverse();
            prop_assert_eq!(policy.is_satisfied_by(&signers), before);
        }

        #[test]
        fn out_of_behaves_like_its_expansion(
            leaves in prop::collection::vec(principal_text(), 1..5),
            k in 1..5usize,
            signers in prop::collection::vec(signer(), 0..5),
        ) {
            let k = k.min(leaves.len());
            let out_of = SignaturePolicy::parse(&format!("OutOf({k}, {})", leaves.join(", ")))?;
            // OR over every k-subset of AND(subset).
            let mut terms = Vec::new();
            for mask in 0u32..(1 << leaves.len()) {
                if mask.count_ones() as usize == k {
                    let chosen: Vec<&str> = (0..leaves.len()).filter(|i| mask & (1 << i) != 0).map(|i| leaves[i].as_str()).collect();
                    terms.push(format!("AND({})", chosen.join(", ")));
                }
            }
            let expansion = SignaturePolicy::parse(&format!("OR({})", terms.join(", ")))?;
            prop_assert_eq!(out_of.is_satisfied_by(&signers), expansion.is_satisfied_by(&signers));
        }
    }
}
