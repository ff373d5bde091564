//! Canonical JSON: one byte string per value, whatever order its maps were built in, so a
//! record's hash is a function of what it says. Keys sorted by their UTF-16 code units
//! (RFC 8785's order; the same as byte order for the ASCII keys Vigil writes), no
//! whitespace, strings and numbers as serde_json prints them.

use serde_json::Value;

/// `value` in canonical form.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_are_written_in_key_order_at_every_depth() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": true, "x": null}], "c": "s"}});
        assert_eq!(
            to_string(&a),
            r#"{"a":{"c":"s","z":[1,{"x":null,"y":true}]},"b":1}"#
        );
    }

    #[test]
    fn the_same_content_built_in_another_order_is_the_same_string() {
        let mut one = serde_json::Map::new();
        one.insert("second".into(), json!(2));
        one.insert("first".into(), json!("a \"quoted\" word"));
        let mut two = serde_json::Map::new();
        two.insert("first".into(), json!("a \"quoted\" word"));
        two.insert("second".into(), json!(2));
        assert_eq!(
            to_string(&Value::Object(one)),
            to_string(&Value::Object(two))
        );
    }
}
