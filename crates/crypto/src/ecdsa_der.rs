//! DER-encoded ECDSA P-256 signatures: strict parsing, the low-S rule, and
//! normalisation of high-S signatures into their low-S twin.

use crate::SignatureError;

/// Order n of the P-256 group, big-endian.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// floor(n / 2): the largest S Fabric accepts.
const HALF_ORDER: [u8; 32] = half(ORDER);

const fn half(n: [u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u8;
    let mut i = 0;
    while i < 32 {
        out[i] = (n[i] >> 1) | carry;
        carry = (n[i] & 1) << 7;
        i += 1;
    }
    out
}

/// r and s as 32-byte big-endian integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawSignature {
    pub r: [u8; 32],
    pub s: [u8; 32],
}

impl RawSignature {
    /// Parses `SEQUENCE { INTEGER r, INTEGER s }` in strict DER: minimal lengths
    /// and integers, no trailing bytes, 1 <= r, s < n.
    pub fn from_der(der: &[u8]) -> Result<Self, SignatureError> {
        let body = match der {
            [0x30, len, body @ ..] if usize::from(*len) == body.len() && *len < 0x80 => body,
            [0x30, ..] => return Err(SignatureError::Malformed("bad SEQUENCE length")),
            _ => return Err(SignatureError::Malformed("not a DER SEQUENCE")),
        };
        let (r, rest) = integer(body)?;
        let (s, rest) = integer(rest)?;
        if !rest.is_empty() {
            return Err(SignatureError::Malformed("trailing bytes after S"));
        }
        Ok(Self { r, s })
    }

    pub fn to_der(&self) -> Vec<u8> {
        let r = minimal_integer(&self.r);
        let s = minimal_integer(&self.s);
        let mut out = Vec::with_capacity(6 + r.len() + s.len());
        out.push(0x30);
        // At most 2 * (2 + 33) = 70 bytes: always a short-form length.
        out.push((4 + r.len() + s.len()) as u8);
        out.extend_from_slice(&[0x02, r.len() as u8]);
        out.extend_from_slice(&r);
        out.extend_from_slice(&[0x02, s.len() as u8]);
        out.extend_from_slice(&s);
        out
    }

    pub fn is_low_s(&self) -> bool {
        self.s <= HALF_ORDER
    }

    /// Replaces s by n - s when s is high; both verify for the same message.
    pub fn normalize_s(&mut self) {
        if !self.is_low_s() {
            self.s = sub(&ORDER, &self.s);
        }
    }
}

fn integer(input: &[u8]) -> Result<([u8; 32], &[u8]), SignatureError> {
    let (len, rest) = match input {
        [0x02, len, rest @ ..] if *len < 0x80 => (usize::from(*len), rest),
        _ => return Err(SignatureError::Malformed("expected an INTEGER")),
    };
    if len == 0 || rest.len() < len {
        return Err(SignatureError::Malformed("truncated INTEGER"));
    }
    let (bytes, rest) = rest.split_at(len);
    if bytes[0] & 0x80 != 0 {
        return Err(SignatureError::Malformed("negative INTEGER"));
    }
    if bytes.len() > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 {
        return Err(SignatureError::Malformed("non-minimal INTEGER"));
    }
    let digits = if bytes[0] == 0 { &bytes[1..] } else { bytes };
    if digits.len() > 32 {
        return Err(SignatureError::Malformed(
            "INTEGER larger than the curve order",
        ));
    }
    let mut out = [0u8; 32];
    out[32 - digits.len()..].copy_from_slice(digits);
    if out == [0u8; 32] || out >= ORDER {
        return Err(SignatureError::Malformed("r or s outside [1, n-1]"));
    }
    Ok((out, rest))
}

fn minimal_integer(value: &[u8; 32]) -> Vec<u8> {
    let first = value.iter().position(|&b| b != 0).unwrap_or(31);
    let digits = &value[first..];
    let mut out = Vec::with_capacity(33);
    if digits[0] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

/// a - b for big-endian a >= b.
fn sub(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

/// The high-S twin of a low-S signature (n - s). For tests of the rejection path.
pub(crate) fn flip_s(der: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let mut raw = RawSignature::from_der(der)?;
    raw.s = sub(&ORDER, &raw.s);
    Ok(raw.to_der())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn half_order_is_n_shifted_right() {
        // 2 * half + 1 == n, since n is odd.
        let mut doubled = [0u8; 32];
        let mut carry = 1u16;
        for i in (0..32).rev() {
            let v = u16::from(HALF_ORDER[i]) * 2 + carry;
            doubled[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(doubled, ORDER);
    }

    #[test]
    fn rejects_malformed_encodings() {
        let cases: &[(&[u8], &str)] = &[
            (&[], "empty"),
            (
                &[0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                "SET instead of SEQUENCE",
            ),
            (
                &[0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                "length too long",
            ),
            (
                &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01],
                "r is zero",
            ),
            (
                &[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01],
                "negative r",
            ),
            (
                &[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01],
                "padded r",
            ),
            (
                &[0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00],
                "trailing byte",
            ),
        ];
        for (der, why) in cases {
            assert!(RawSignature::from_der(der).is_err(), "accepted: {why}");
        }
        assert!(RawSignature::from_der(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).is_ok());
    }

    proptest! {
        #[test]
        fn der_round_trips(r in prop::array::uniform32(any::<u8>()), s in prop::array::uniform32(any::<u8>())) {
            prop_assume!(r != [0; 32] && s != [0; 32] && r < ORDER && s < ORDER);
            let raw = RawSignature { r, s };
            prop_assert_eq!(RawSignature::from_der(&raw.to_der())?, raw);
        }

        #[test]
        fn normalising_yields_low_s_and_is_idempotent(s in prop::array::uniform32(any::<u8>())) {
            prop_assume!(s != [0; 32] && s < ORDER);
            let mut raw = RawSignature { r: [1; 32], s };
            raw.normalize_s();
            prop_assert!(raw.is_low_s());
            let once = raw.clone();
            raw.normalize_s();
            prop_assert_eq!(raw, once);
        }
    }
}
