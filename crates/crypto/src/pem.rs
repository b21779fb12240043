//! PEM blocks (RFC 7468): what Fabric stores keys and certificates in.

use x509_parser::pem::Pem;

use crate::KeyError;

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block in `text`, in order. Text outside blocks is ignored, as
/// Fabric's Go tooling does.
pub fn blocks(text: &[u8]) -> Result<Vec<Block>, KeyError> {
    let mut out = Vec::new();
    for pem in Pem::iter_from_buffer(text) {
        let pem = pem.map_err(|e| KeyError::Pem(e.to_string()))?;
        out.push(Block {
            label: pem.label,
            der: pem.contents,
        });
    }
    Ok(out)
}

/// The DER of every `CERTIFICATE` block in `text`.
pub fn certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, KeyError> {
    let certs: Vec<Vec<u8>> = blocks(text)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect();
    if certs.is_empty() {
        return Err(KeyError::NoPemBlock {
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// Encodes DER as a PEM block with 64-character lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional, ASCII whitespace ignored), as
/// Fabric's chaincode shims read their TLS key and certificate files.
pub fn unbase64(text: &str) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in text.bytes().enumerate() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            c if c.is_ascii_whitespace() => continue,
            other => {
                return Err(KeyError::Pem(format!(
                    "not base64: byte {other:#04x} at offset {i}"
                )));
            }
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn base64_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn unbase64_vectors_and_errors() {
        assert_eq!(unbase64("Zm9vYmFy").expect("valid"), b"foobar");
        assert_eq!(unbase64("Zg==").expect("valid"), b"f");
        assert_eq!(unbase64("Zm8=\n").expect("valid"), b"fo");
        assert!(unbase64("Zm9v*").is_err());
    }

    proptest! {
        #[test]
        fn base64_round_trips(data in prop::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(unbase64(&base64(&data))?, data);
        }

        #[test]
        fn encode_then_parse_round_trips(der in prop::collection::vec(any::<u8>(), 1..300)) {
            let text = encode("CERTIFICATE", &der);
            prop_assert_eq!(certificates(text.as_bytes())?, vec![der]);
        }
    }
}
