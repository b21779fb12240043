//! URL query strings of the HTTP services (the CA, the REST gateway):
//! `a=1&b=x%20y` into decoded pairs; the last of a repeated name wins.

use std::collections::BTreeMap;

/// The decoded pairs of a query string (without its `?`).
pub fn pairs(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// Percent-decoding, `+` as a space; malformed escapes are kept as they are.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded() {
        let parsed = pairs("ca=ca-org1&id=a%40b&force=true&empty=&x=%zz&y=1+2&t=%4");
        assert_eq!(parsed["ca"], "ca-org1");
        assert_eq!(parsed["id"], "a@b");
        assert_eq!(parsed["empty"], "");
        assert_eq!(parsed["x"], "%zz");
        assert_eq!(parsed["y"], "1 2");
        assert_eq!(parsed["t"], "%4");
    }
}
