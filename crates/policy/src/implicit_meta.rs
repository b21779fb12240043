//! Implicit meta policies: a rule over the same-named policy of every organisation.

use weft_protos::common::{ImplicitMetaPolicy, implicit_meta_policy::Rule};

use crate::ParseError;

/// How many organisations' sub-policies must be satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaRule {
    Any,
    All,
    Majority,
}

/// `"MAJORITY Endorsement"`, `"ANY Readers"`, `"ALL Writers"`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplicitMeta {
    pub rule: MetaRule,
    pub sub_policy: String,
}

impl ImplicitMeta {
    /// Parses `<ANY|ALL|MAJORITY> <SubPolicy>`, as written in configtx.yaml.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let error = |offset: usize, message: &str| ParseError {
            policy: text.to_owned(),
            offset,
            message: message.to_owned(),
        };
        let mut words = text.split_whitespace();
        let (Some(rule), Some(sub_policy), None) = (words.next(), words.next(), words.next())
        else {
            return Err(error(0, "expected '<ANY|ALL|MAJORITY> <SubPolicyName>'"));
        };
        let rule = match rule.to_ascii_uppercase().as_str() {
            "ANY" => MetaRule::Any,
            "ALL" => MetaRule::All,
            "MAJORITY" => MetaRule::Majority,
            _ => return Err(error(0, "rule must be ANY, ALL or MAJORITY")),
        };
        Ok(Self {
            rule,
            sub_policy: sub_policy.to_owned(),
        })
    }

    pub fn from_proto(policy: &ImplicitMetaPolicy) -> Self {
        let rule = match Rule::try_from(policy.rule) {
            Ok(Rule::All) => MetaRule::All,
            Ok(Rule::Majority) => MetaRule::Majority,
            // Unknown values decode as the protobuf default, ANY.
            Ok(Rule::Any) | Err(_) => MetaRule::Any,
        };
        Self {
            rule,
            sub_policy: policy.sub_policy.clone(),
        }
    }

    pub fn to_proto(&self) -> ImplicitMetaPolicy {
        let rule = match self.rule {
            MetaRule::Any => Rule::Any,
            MetaRule::All => Rule::All,
            MetaRule::Majority => Rule::Majority,
        };
        ImplicitMetaPolicy {
            sub_policy: self.sub_policy.clone(),
            rule: rule as i32,
        }
    }

    /// How many of `organizations` sub-policies must hold: ANY 1, ALL every
    /// one, MAJORITY more than half (Fabric's thresholds, also for zero orgs).
    pub fn threshold(&self, organizations: usize) -> usize {
        match self.rule {
            MetaRule::Any => 1,
            MetaRule::All => organizations,
            MetaRule::Majority => organizations / 2 + 1,
        }
    }

    /// Evaluates the rule over each organisation's sub-policy outcome.
    pub fn evaluate(&self, sub_policy_outcomes: impl IntoIterator<Item = bool>) -> bool {
        let (mut total, mut satisfied) = (0, 0);
        for outcome in sub_policy_outcomes {
            total += 1;
            satisfied += usize::from(outcome);
        }
        satisfied >= self.threshold(total)
    }
}

impl std::fmt::Display for ImplicitMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = match self.rule {
            MetaRule::Any => "ANY",
            MetaRule::All => "ALL",
            MetaRule::Majority => "MAJORITY",
        };
        write!(f, "{rule} {}", self.sub_policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &[bool], bool)] = &[
            ("ANY Readers", &[false, true, false], true),
            ("ANY Readers", &[false, false], false),
            ("ANY Readers", &[], false),
            ("ALL Writers", &[true, true], true),
            ("ALL Writers", &[true, false], false),
            ("ALL Writers", &[], true),
            ("MAJORITY Endorsement", &[true, false], false),
            ("MAJORITY Endorsement", &[true, true, false], true),
            ("MAJORITY Endorsement", &[true, false, false], false),
            ("MAJORITY Endorsement", &[true, true, false, false], false),
            ("MAJORITY Endorsement", &[true, true, true, false], true),
        ];
        for (text, outcomes, expected) in cases {
            let meta = ImplicitMeta::parse(text).expect(text);
            assert_eq!(
                meta.evaluate(outcomes.iter().copied()),
                *expected,
                "{text} over {outcomes:?}"
            );
            assert_eq!(meta.to_string(), *text);
            assert_eq!(ImplicitMeta::from_proto(&meta.to_proto()), meta);
        }
    }

    #[test]
    fn malformed_rules_are_refused() {
        for text in ["", "MOST Endorsement", "ANY", "ANY Readers Writers"] {
            assert!(ImplicitMeta::parse(text).is_err(), "{text}");
        }
    }
}
