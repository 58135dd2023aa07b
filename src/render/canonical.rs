//! Canonical serialization and hashing. Hashes must not depend on the order keys were written in a
//! file or built in code, so objects are serialized with every map's keys sorted.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Compact JSON with the keys of every object sorted byte-wise, recursively.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Serializing a string or a number cannot fail; `Value`'s Display is its JSON form.
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of the canonical form of `value`.
pub fn hash_value(value: &Value) -> String {
    sha256_hex(to_canonical_string(value).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let cases = [
            (
                json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": null}}),
                r#"{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}"#,
            ),
            (
                json!({"s": "quote\" and\nnewline"}),
                r#"{"s":"quote\" and\nnewline"}"#,
            ),
            (json!([3, "x", true, 1.5]), r#"[3,"x",true,1.5]"#),
            (json!({}), "{}"),
        ];
        for (value, expected) in cases {
            assert_eq!(to_canonical_string(&value), expected);
        }
    }

    #[test]
    fn hash_ignores_key_order_but_not_content() {
        let a = json!({"x": 1, "y": [1, 2]});
        let b: Value = serde_json::from_str(r#"{"y": [1, 2], "x": 1}"#).unwrap();
        let c = json!({"x": 1, "y": [2, 1]});
        assert_eq!(hash_value(&a), hash_value(&b));
        assert_ne!(hash_value(&a), hash_value(&c));
        assert_eq!(hash_value(&a).len(), 64);
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
