//! The policy language of Fabric's CLI and chaincode definitions.

use weft_msp::{MspRole, Principal};
use weft_protos::common::{SignaturePolicy as Rule, SignaturePolicyEnvelope, signature_policy};

/// Longest policy string accepted, and deepest nesting.
const POLICY_BYTES_MAX: usize = 64 * 1024;
const NESTING_MAX: usize = 32;

/// Why a policy string was refused, with the byte offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {policy:?}: {message} at offset {offset}")]
pub struct ParseError {
    pub policy: String,
    pub offset: usize,
    pub message: String,
}

/// Parses a signature policy such as `AND('Org1MSP.peer','Org2MSP.peer')` into
/// the envelope Fabric stores. `AND`, `OR` and `OutOf` are case-insensitive;
/// principals are `'<MSP ID>.<member|admin|client|peer|orderer>'` in single or
/// double quotes. Each distinct principal appears once in `identities`.
pub fn parse_signature_policy(text: &str) -> Result<SignaturePolicyEnvelope, ParseError> {
    let mut parser = Parser {
        text,
        pos: 0,
        identities: Vec::new(),
    };
    if text.len() > POLICY_BYTES_MAX {
        return Err(parser.error(format!("longer than {POLICY_BYTES_MAX} bytes")));
    }
    let rule = parser.policy(0)?;
    parser.skip_whitespace();
    if parser.pos != text.len() {
        return Err(parser.error("unexpected text after the policy".into()));
    }
    Ok(SignaturePolicyEnvelope {
        version: 0,
        rule: Some(rule),
        identities: parser.identities.iter().map(Principal::to_proto).collect(),
    })
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    identities: Vec<Principal>,
}

impl Parser<'_> {
    fn error(&self, message: String) -> ParseError {
        ParseError {
            policy: self.text.to_owned(),
            offset: self.pos,
            message,
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_whitespace(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        self.skip_whitespace();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.error(format!("expected '{c}'")))
        }
    }

    fn policy(&mut self, depth: usize) -> Result<Rule, ParseError> {
        if depth > NESTING_MAX {
            return Err(self.error(format!("nested deeper than {NESTING_MAX} levels")));
        }
        self.skip_whitespace();
        match self.rest().chars().next() {
            Some('\'' | '"') => self.principal(),
            Some(c) if c.is_ascii_alphabetic() => self.gate(depth),
            Some(_) => {
                Err(self
                    .error("expected AND(...), OR(...), OutOf(...) or a quoted principal".into()))
            }
            None => Err(self.error("unexpected end of policy".into())),
        }
    }

    fn gate(&mut self, depth: usize) -> Result<Rule, ParseError> {
        let start = self.pos;
        let name_len = self
            .rest()
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .count();
        let name = self.rest()[..name_len].to_ascii_lowercase();
        self.pos += name_len;
        self.expect('(')?;
        let threshold = match name.as_str() {
            "and" | "or" => None,
            "outof" => {
                self.skip_whitespace();
                let digits = self.rest().chars().take_while(char::is_ascii_digit).count();
                if digits == 0 {
                    return Err(self.error("OutOf needs a threshold number first".into()));
                }
                let n: i32 = self.rest()[..digits]
                    .parse()
                    .map_err(|_| self.error("OutOf threshold is too large".into()))?;
                self.pos += digits;
                self.expect(',')?;
                Some(n)
            }
            _ => {
                self.pos = start;
                return Err(self.error(format!(
                    "unknown operator {:?} (expected AND, OR or OutOf)",
                    &self.text[start..start + name_len]
                )));
            }
        };
        let mut rules = vec![self.policy(depth + 1)?];
        loop {
            self.skip_whitespace();
            if self.rest().starts_with(',') {
                self.pos += 1;
                rules.push(self.policy(depth + 1)?);
            } else {
                self.expect(')')?;
                break;
            }
        }
        let count = rules.len() as i32;
        let n = match (name.as_str(), threshold) {
            ("and", _) => count,
            ("or", _) => 1,
            (_, Some(n)) if (1..=count).contains(&n) => n,
            (_, Some(n)) => {
                return Err(self.error(format!(
                    "OutOf threshold {n} is outside 1..={count}, the number of sub-policies"
                )));
            }
            (_, None) => unreachable!("outof always has a threshold"),
        };
        Ok(Rule {
            r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf {
                n,
                rules,
            })),
        })
    }

    fn principal(&mut self) -> Result<Rule, ParseError> {
        let quote = self.rest().chars().next().unwrap_or('\'');
        let start = self.pos;
        self.pos += 1;
        let Some(len) = self.rest().find(quote) else {
            self.pos = start;
            return Err(self.error("unterminated quoted principal".into()));
        };
        let body = &self.text[self.pos..self.pos + len];
        let principal = body
            .rsplit_once('.')
            .filter(|(msp_id, _)| {
                !msp_id.is_empty()
                    && msp_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            })
            .and_then(|(msp_id, role)| {
                MspRole::from_name(role).map(|role| Principal::role(msp_id, role))
            });
        let Some(principal) = principal else {
            self.pos = start;
            return Err(self.error(format!(
                "{body:?} is not a principal of the form 'MSPID.role' with role member, admin, client, peer or orderer"
            )));
        };
        self.pos += len + 1;
        let index = match self.identities.iter().position(|p| *p == principal) {
            Some(index) => index,
            None => {
                self.identities.push(principal);
                self.identities.len() - 1
            }
        };
        Ok(Rule {
            r#type: Some(signature_policy::Type::SignedBy(index as i32)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature_policy::{NOutOf, Type};

    fn signed_by(i: i32) -> Rule {
        Rule {
            r#type: Some(Type::SignedBy(i)),
        }
    }

    fn n_of(n: i32, rules: Vec<Rule>) -> Rule {
        Rule {
            r#type: Some(Type::NOutOf(NOutOf { n, rules })),
        }
    }

    #[test]
    fn parses_what_fabric_users_write() {
        let cases: Vec<(&str, Rule, Vec<&str>)> = vec![
            ("'Org1MSP.member'", signed_by(0), vec!["Org1MSP.member"]),
            (
                "AND('Org1MSP.peer','Org2MSP.peer')",
                n_of(2, vec![signed_by(0), signed_by(1)]),
                vec!["Org1MSP.peer", "Org2MSP.peer"],
            ),
            (
                "OR('Org1MSP.peer', 'Org2MSP.peer')",
                n_of(1, vec![signed_by(0), signed_by(1)]),
                vec!["Org1MSP.peer", "Org2MSP.peer"],
            ),
            (
                "OutOf(2, 'A.member', 'B.member', 'C.member')",
                n_of(2, vec![signed_by(0), signed_by(1), signed_by(2)]),
                vec!["A.member", "B.member", "C.member"],
            ),
            (
                "and('A.admin', or(\"B.client\", 'A.admin'))",
                n_of(
                    2,
                    vec![signed_by(0), n_of(1, vec![signed_by(1), signed_by(0)])],
                ),
                vec!["A.admin", "B.client"],
            ),
            (
                "OUTOF(1, 'org.with.dots.orderer')",
                n_of(1, vec![signed_by(0)]),
                vec!["org.with.dots.orderer"],
            ),
        ];
        for (text, rule, principals) in cases {
            let envelope = parse_signature_policy(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(envelope.rule, Some(rule), "{text}");
            let names: Vec<String> = envelope
                .identities
                .iter()
                .map(|p| Principal::from_proto(p).expect("principal").to_string())
                .collect();
            assert_eq!(names, principals, "{text}");
        }
    }

    #[test]
    fn refuses_malformed_policies_with_a_position() {
        let cases = [
            ("", "unexpected end of policy", 0),
            ("AND('A.member'", "expected ')'", 14),
            ("XOR('A.member')", "unknown operator \"XOR\"", 0),
            ("AND('A.boss')", "\"A.boss\" is not a principal", 4),
            ("OutOf(3, 'A.member', 'B.member')", "outside 1..=2", 32),
            ("OutOf('A.member')", "needs a threshold", 6),
            ("'A.member' 'B.member'", "unexpected text", 11),
            ("AND('A.member)", "unterminated", 4),
        ];
        for (text, message, offset) in cases {
            let error = parse_signature_policy(text).expect_err(text);
            assert!(error.message.contains(message), "{text}: {error}");
            assert_eq!(error.offset, offset, "{text}: {error}");
        }
        let deep = format!("{}'A.member'{}", "OR(".repeat(40), ")".repeat(40));
        assert!(
            parse_signature_policy(&deep)
                .expect_err("deep")
                .message
                .contains("nested deeper")
        );
    }
}
