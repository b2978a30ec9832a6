//! serialise(parse(x)) parses to the same value, for every kind.
//!
//! Istio kinds: documents are generated at random from the CRD schemas (any subset of fields,
//! values from pools of realistic ones), read into typed values, written back out as JSON and
//! read again; the two typed values must be equal, and so must their validation. Kubernetes
//! kinds, which have no CRD: every document of Istio's samples goes round the same way, and so
//! do a Pod and a Namespace made from each sample Deployment.

mod reference;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use trellis_api::{Kind, LoadOptions, Resource, load_text, yaml};

fn strings_for(name: &str) -> Vec<&'static str> {
    let name = name.to_ascii_lowercase();
    if [
        "timeout", "interval", "period", "ttl", "duration", "delay", "time",
    ]
    .iter()
    .any(|d| name.ends_with(d))
    {
        vec!["1s", "100ms", "2m", "1h"]
    } else if name == "protocol" {
        vec!["HTTP", "TCP", "GRPC", "HTTPS", "TLS"]
    } else if name.contains("host") {
        vec![
            "reviews",
            "reviews.default.svc.cluster.local",
            "*.example.com",
            "example.com",
            "*",
        ]
    } else if name.contains("regex") {
        vec!["^/api.*", "v[0-9]+", "(a|b)"]
    } else if name.contains("namespace") {
        vec!["default", "istio-system", "."]
    } else if name.contains("address") || name.contains("ip") || name == "bind" {
        vec!["10.0.0.1", "192.168.0.0/16", "2001:db8::1"]
    } else if name.contains("uri") || name.contains("path") || name == "prefix" || name == "exact" {
        vec!["/", "/api", "/api/v1"]
    } else if name.contains("url") {
        vec!["https://example.com/jwks.json", "oci://registry/plugin:1"]
    } else {
        vec!["v1", "http", "x-user", "reviews", "app"]
    }
}

fn is_duration(schema: &Value) -> bool {
    schema["x-kubernetes-validations"]
        .as_array()
        .is_some_and(|rules| {
            rules.iter().any(|r| {
                r["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("duration"))
            })
        })
}

/// A strategy for values of `schema`; `name` is the property the value is for.
fn values(schema: &Value, name: &str, depth: usize) -> BoxedStrategy<Value> {
    if let Some(options) = schema["enum"].as_array() {
        return proptest::sample::select(options.clone()).boxed();
    }
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return prop_oneof![(1u32..100).prop_map(|n| json!(n)), Just(json!("10"))].boxed();
    }
    match schema["type"].as_str() {
        Some("string") if is_duration(schema) => {
            proptest::sample::select(vec!["1s", "100ms", "1.5s", "2m", "1h30m", "250us"])
                .prop_map(|s| json!(s))
                .boxed()
        }
        Some("string") => proptest::sample::select(strings_for(name))
            .prop_map(|s| json!(s))
            .boxed(),
        Some("integer") => {
            let lower = schema["minimum"].as_i64().unwrap_or(0).max(0);
            if name.contains("port") || name == "number" {
                proptest::sample::select(vec![80i64, 443, 9080, 15021])
                    .prop_map(|n| json!(n))
                    .boxed()
            } else {
                (lower..lower + 100).prop_map(|n| json!(n)).boxed()
            }
        }
        Some("number") => (0.0f64..100.0).prop_map(|n| json!(n)).boxed(),
        Some("boolean") => any::<bool>().prop_map(|b| json!(b)).boxed(),
        Some("array") => {
            let items = values(&schema["items"], name, depth + 1);
            proptest::collection::vec(items, 0..3)
                .prop_map(Value::Array)
                .boxed()
        }
        _ => objects(schema, depth),
    }
}

fn objects(schema: &Value, depth: usize) -> BoxedStrategy<Value> {
    let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            let key = name.clone();
            let required = schema["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|v| v == name));
            let value = values(prop, name, depth + 1);
            let field = if required {
                value.prop_map(move |v| Some((key.clone(), v))).boxed()
            } else {
                let odds = if depth > 3 { 0.2 } else { 0.5 };
                proptest::option::weighted(odds, value)
                    .prop_map(move |v| v.map(|v| (key.clone(), v)))
                    .boxed()
            };
            fields.push(field);
        }
    }
    if let Some(inner @ Value::Object(_)) = schema.get("additionalProperties") {
        let keys =
            proptest::sample::select(vec!["app", "version", "x-user", "app.kubernetes.io/name"]);
        fields.push(
            proptest::option::of((keys, values(inner, "value", depth + 1)))
                .prop_map(|kv| kv.map(|(k, v)| (k.to_owned(), v)))
                .boxed(),
        );
    }
    let one_of: Vec<Vec<String>> = schema["oneOf"]
        .as_array()
        .map(|alts| {
            alts.iter()
                .map(|a| {
                    a["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let choices = one_of.len().max(1);
    (fields, 0..choices)
        .prop_map(move |(fields, choice)| {
            let mut map: Map<String, Value> = fields.into_iter().flatten().collect();
            if !one_of.is_empty() {
                for (index, alternative) in one_of.iter().enumerate() {
                    if index != choice {
                        for field in alternative {
                            if !one_of[choice].contains(field) {
                                map.remove(field);
                            }
                        }
                    }
                }
            }
            Value::Object(map)
        })
        .boxed()
}

fn kind_of(document: &Value) -> Kind {
    let (group, _) =
        trellis_api::resource::split_api_version(document["apiVersion"].as_str().unwrap());
    Kind::find(group, document["kind"].as_str().unwrap()).expect("a kind the mesh reads")
}

/// Reads, writes and reads again; returns whether the document could be read at all.
fn round_trip(document: &Value) -> Result<bool, TestCaseError> {
    let kind = kind_of(document);
    let (Some(first), _) = Resource::read(kind, document) else {
        return Ok(false);
    };
    let written = first.to_value();
    let (second, issues) = Resource::read(kind, &written);
    let Some(second) = second else {
        return Err(TestCaseError::fail(format!(
            "written form does not read back: {issues:?}\n{written:#}"
        )));
    };
    prop_assert_eq!(&first, &second, "written form: {:#}", written);
    prop_assert_eq!(second.to_value(), written.clone());
    prop_assert_eq!(first.validate(), second.validate());
    // And through text, as a file would carry it.
    let load = load_text(
        "roundtrip.json",
        &serde_json::to_string(&written).unwrap(),
        &LoadOptions::default(),
    );
    let issues: usize = load.rejected.iter().map(|r| r.issues.len()).sum();
    prop_assert_eq!(load.loaded.len() + load.rejected.len(), 1, "{:?}", issues);
    Ok(true)
}

#[test]
fn istio_kinds_round_trip() {
    let path = reference::istio_reference().join("crd-all.gen.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    for crd in yaml::parse_stream(&text)
        .documents
        .into_iter()
        .map(|d| d.value)
    {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        if kind == "TrafficExtension" {
            continue;
        }
        let group = crd["spec"]["group"].as_str().unwrap().to_owned();
        let version = crd["spec"]["versions"][0].clone();
        let api_version = format!("{group}/{}", version["name"].as_str().unwrap());
        let spec = objects(
            &version["schema"]["openAPIV3Schema"]["properties"]["spec"],
            0,
        );
        let mut runner = TestRunner::new(Config {
            cases: 200,
            failure_persistence: None,
            ..Config::default()
        });
        let read = std::cell::Cell::new(0u32);
        runner
            .run(&spec, |spec| {
                let document = json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"name": "generated", "namespace": "default", "labels": {"app": "reviews"}},
                    "spec": spec,
                });
                if round_trip(&document)? {
                    read.set(read.get() + 1);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        // Most generated documents must be readable, or the property says little.
        let read = read.get();
        assert!(
            read >= 100,
            "{kind}: only {read} of 200 generated documents could be read"
        );
    }
}

/// The Pod a Deployment's template describes.
fn pod_of(deployment: &Value) -> Value {
    let template = &deployment["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(format!(
        "{}-0",
        deployment["metadata"]["name"].as_str().unwrap()
    ));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}

/// A Namespace named after a Deployment, carrying its labels.
fn namespace_of(deployment: &Value) -> Value {
    let metadata = &deployment["metadata"];
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": metadata["name"], "labels": metadata["labels"].clone()},
        "spec": {"finalizers": ["kubernetes"]},
    })
}

#[test]
fn sample_documents_round_trip() {
    let root = reference::istio_reference().join("samples");
    let mut stack = vec![root];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for document in yaml::parse_stream(&text).documents {
                let value = document.value;
                let (group, _) = trellis_api::resource::split_api_version(
                    value["apiVersion"].as_str().unwrap_or(""),
                );
                if Kind::find(group, value["kind"].as_str().unwrap_or("")).is_none() {
                    continue;
                }
                let readable =
                    round_trip(&value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(
                    readable,
                    "{}: a sample document could not be read",
                    path.display()
                );
                checked += 1;
                // The samples have no Pods or Namespaces: make them from each Deployment.
                if value["kind"] == "Deployment" {
                    for derived in [pod_of(&value), namespace_of(&value)] {
                        let readable = round_trip(&derived)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                        assert!(readable, "{}: {derived}", path.display());
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} sample documents found");
}
