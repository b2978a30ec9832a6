//! Every field of Istio's CRD schemas is a field of Trellis's types, with the same shape.
//!
//! For each kind, documents are generated from the CRD's OpenAPI schema: every property filled
//! with a value of the schema's type, one document per alternative of each `oneOf` and per value
//! of each enum. Reading them must never report an unknown field, a value of the wrong type, an
//! enum value Trellis does not know, or a required field the schema does not require.

mod reference;

use serde_json::{Map, Value, json};
use trellis_api::{LoadOptions, load_text, yaml};

fn crds() -> Vec<Value> {
    let path = reference::istio_reference().join("crd-all.gen.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stream = yaml::parse_stream(&text);
    assert!(stream.error.is_none(), "{:?}", stream.error);
    stream.documents.into_iter().map(|d| d.value).collect()
}

/// How many documents it takes to visit every oneOf alternative and enum value of a schema.
fn variants_needed(schema: &Value) -> usize {
    let mut n = 1;
    if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
        n = n.max(alternatives.len());
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        n = n.max(values.len());
    }
    for key in ["properties"] {
        if let Some(Value::Object(props)) = schema.get(key) {
            n = props.values().map(variants_needed).fold(n, usize::max);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner @ Value::Object(_)) = schema.get(key) {
            n = n.max(variants_needed(inner));
        }
    }
    n
}

/// The properties a `oneOf` lets one document set together, for the given variant.
fn excluded_by_one_of(schema: &Value, variant: usize) -> Vec<String> {
    let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) else {
        return vec![];
    };
    let names = |alt: &Value| -> Vec<String> {
        alt.get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let all: Vec<String> = alternatives.iter().flat_map(names).collect();
    let chosen = names(&alternatives[variant % alternatives.len()]);
    all.into_iter().filter(|n| !chosen.contains(n)).collect()
}

fn is_duration(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|rules| {
            rules.iter().any(|r| {
                r.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.contains("duration"))
            })
        })
}

/// A value for `schema`; `minimal` fills only required properties.
fn generate(schema: &Value, variant: usize, minimal: bool) -> Value {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values[variant % values.len()].clone();
    }
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return json!(1);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") if is_duration(schema) => json!("1s"),
        Some("string") => json!("x"),
        Some("integer") => {
            let min = schema
                .get("minimum")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .max(1);
            json!(min)
        }
        Some("number") => json!(1.0),
        Some("boolean") => json!(true),
        Some("array") => match schema.get("items") {
            Some(items) if !minimal => json!([generate(items, variant, minimal)]),
            _ => json!([]),
        },
        _ => {
            let mut map = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let excluded = excluded_by_one_of(schema, variant);
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (name, prop) in props {
                    if excluded.contains(name) || (minimal && !required.contains(&name.as_str())) {
                        continue;
                    }
                    map.insert(name.clone(), generate(prop, variant, minimal));
                }
            }
            if let Some(inner @ Value::Object(_)) = schema.get("additionalProperties")
                && !minimal
            {
                map.insert("k".into(), generate(inner, variant, minimal));
            }
            if map.is_empty()
                && schema.get("x-kubernetes-preserve-unknown-fields").is_some()
                && !minimal
            {
                map.insert("free".into(), json!({"form": [1, "two"]}));
            }
            Value::Object(map)
        }
    }
}

/// Problems that mean Trellis's types and the schema disagree (value checks are allowed).
fn shape_problems(document: &Value) -> Vec<String> {
    let text = serde_json::to_string(document).unwrap();
    let load = load_text("generated.json", &text, &LoadOptions::default());
    load.rejected
        .iter()
        .flat_map(|r| r.issues.iter())
        .map(|i| i.to_string())
        .filter(|m| {
            m.contains("unknown field")
                || m.contains("invalid type")
                || m.contains("unknown value")
                || m.ends_with(": is required")
                || m.contains("unknown kind")
        })
        .collect()
}

#[test]
fn every_crd_field_is_known_with_its_shape() {
    let mut failures = Vec::new();
    let mut kinds = 0;
    for crd in crds() {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        if kind == "TrafficExtension" {
            continue; // not part of Trellis's API (see docs/configuration.md)
        }
        kinds += 1;
        let group = crd["spec"]["group"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let name = version["name"].as_str().unwrap();
            let spec_schema = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
            let variants = variants_needed(spec_schema);
            let mut documents: Vec<Value> = (0..variants)
                .map(|i| generate(spec_schema, i, false))
                .collect();
            documents.push(generate(spec_schema, 0, true));
            for spec in documents {
                let document = json!({
                    "apiVersion": format!("{group}/{name}"),
                    "kind": kind,
                    "metadata": {"name": "generated", "namespace": "default"},
                    "spec": spec,
                });
                for problem in shape_problems(&document) {
                    let line = format!("{kind} {name}: {problem}");
                    if !failures.contains(&line) {
                        failures.push(line);
                    }
                }
            }
        }
    }
    assert_eq!(kinds, 14, "the reference should hold Istio's 14 kinds");
    assert!(
        failures.is_empty(),
        "{} disagreements with the CRD schemas:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
