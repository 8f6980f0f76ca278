//! The shared schema against the golden fixtures (the JS tests read the same files) and the
//! checked-in JSON Schema.

use beacon::schema::{self, FieldKind, ENUM_FIELDS, STANDARD_FIELDS};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn valid_fixtures_validate_and_round_trip() {
    let items = fixture("valid.json");
    let items = items.as_array().unwrap();
    assert!(items.len() >= 9);
    for item in items {
        let canonical =
            schema::validate_object(item.as_object().unwrap(), schema::DEFAULT_MAX_ITEM_BYTES)
                .unwrap_or_else(|e| panic!("{item}: {e}"));
        assert!(canonical.starts_with("{\"event_id\":"), "{canonical}");
        let back: Value = serde_json::from_str(&canonical).unwrap();
        let (a, b) = (item.as_object().unwrap(), back.as_object().unwrap());
        assert_eq!(a.len(), b.len());
        for (k, v) in a {
            if k == "event_time" {
                let want = schema::parse_rfc3339_ms(v.as_str().unwrap()).unwrap();
                let got = b[k].as_str().unwrap();
                assert_eq!(got, schema::format_rfc3339_ms(want), "normalised to UTC ms");
                assert!(got.ends_with('Z') && got.len() == 24);
            } else {
                assert_eq!(&b[k], v, "key {k}");
            }
        }
        // Validating the canonical form again changes nothing.
        assert_eq!(
            schema::validate_str(&canonical, schema::DEFAULT_MAX_ITEM_BYTES).unwrap(),
            canonical
        );
    }
}

#[test]
fn invalid_fixtures_name_the_field_and_rule() {
    for case in fixture("invalid.json").as_array().unwrap() {
        let why = case["why"].as_str().unwrap();
        let want = case["error"].as_str().unwrap();
        let got = match &case["item"] {
            Value::Object(m) => {
                schema::validate_object(m, schema::DEFAULT_MAX_ITEM_BYTES).unwrap_err()
            }
            other => schema::validate_str(&other.to_string(), schema::DEFAULT_MAX_ITEM_BYTES)
                .unwrap_err(),
        };
        assert_eq!(got.to_string(), want, "{why}");
    }
}

#[test]
fn oversized_item_is_rejected_with_its_size() {
    let big = "x".repeat(40_000);
    let item = serde_json::json!({"event_id":"a","event_time":"2026-11-22T02:19:30Z","event_type":"behavioral","event_name":"x","blob":big});
    let err = schema::validate_object(item.as_object().unwrap(), schema::DEFAULT_MAX_ITEM_BYTES)
        .unwrap_err();
    assert_eq!(err.reason(), "too_large");
    assert!(
        err.to_string().contains("over the limit of 32768 bytes"),
        "{err}"
    );
    assert!(schema::validate_object(item.as_object().unwrap(), 64 * 1024).is_ok());
}

#[test]
fn malformed_json_is_named() {
    let err = schema::validate_str("{\"event_id\": ", 1024).unwrap_err();
    assert_eq!(err.reason(), "json");
    assert!(err.to_string().starts_with("malformed JSON"), "{err}");
}

#[test]
fn json_schema_file_mirrors_the_rust_tables() {
    let path = format!(
        "{}/schema/beacon-event.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let js: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let required: Vec<&str> = js["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        ["event_id", "event_time", "event_type", "event_name"]
    );
    let branch = |ty: &str| -> &Value {
        js["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["if"]["properties"]["event_type"]["const"] == ty)
            .map(|b| &b["then"])
            .unwrap_or_else(|| panic!("no branch for {ty}"))
    };
    let mut per_type = std::collections::HashMap::<&str, usize>::new();
    for (ty, field, kind, req) in STANDARD_FIELDS {
        *per_type.entry(ty).or_default() += 1;
        let then = branch(ty);
        let prop = &then["properties"][*field];
        let want = match kind {
            FieldKind::String => "string",
            FieldKind::Number => "number",
            FieldKind::UInt => "integer",
            FieldKind::Bool => "boolean",
            FieldKind::Numbers => "array",
        };
        assert_eq!(prop["type"], want, "{ty}.{field}");
        let listed = then["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|v| v == field));
        assert_eq!(listed, *req, "{ty}.{field} required");
    }
    for (ty, n) in per_type {
        assert_eq!(
            branch(ty)["properties"].as_object().unwrap().len(),
            n,
            "{ty}: no extra fields in the JSON Schema"
        );
    }
    for (ty, field, allowed, _) in ENUM_FIELDS {
        let got: Vec<&str> = branch(ty)["properties"][*field]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&got, allowed, "{ty}.{field}");
    }
}

#[test]
fn type_and_name_rules() {
    assert!(schema::check_type("my.type_1-x").is_ok());
    assert!(schema::check_type("Bad").is_err());
    assert!(
        schema::check_name(&"é".repeat(128)).is_ok(),
        "128 characters, not bytes"
    );
    assert!(schema::check_name(&"é".repeat(129)).is_err());
}
