//! Tests of `Telemetry` reading and rules.

use super::{CustomTag, IstioMetric, TagOperation};
use crate::{LoadOptions, Resource, load_text};

fn telemetry(spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: t, namespace: istio-system}}\nspec:\n{spec}"
    )
}

/// Every issue (errors, then warnings of a document that loaded) as `path: message`.
fn issues(text: &str) -> Vec<String> {
    let load = load_text("t.yaml", text, &LoadOptions::default());
    let rejected = load.rejected.iter().flat_map(|r| r.issues.iter());
    let warnings = load.loaded.iter().flat_map(|l| l.warnings.iter());
    rejected.chain(warnings).map(|i| i.to_string()).collect()
}

#[test]
fn the_open_telemetry_sample_loads() {
    let text = crate::testing::sample("open-telemetry/tracing/telemetry.yaml");
    let load = load_text("telemetry.yaml", &text, &LoadOptions::default());
    assert!(load.is_clean(), "{:?}", load.rejected);
    assert_eq!(load.loaded.len(), 1);
    assert!(
        load.loaded[0].warnings.is_empty(),
        "{:?}",
        load.loaded[0].warnings
    );
}

#[test]
fn loads_every_section() {
    let text = telemetry(
        "  selector:
    matchLabels: {app: reviews}
  tracing:
  - match: {mode: SERVER}
    providers: [{name: zipkin}]
    randomSamplingPercentage: 12.5
    disableSpanReporting: false
    disableContextPropagation: null
    useRequestIdForTraceSampling: true
    enableIstioTags: true
    customTags:
      cluster: {literal: {value: east}}
      pod: {environment: {name: POD_NAME, defaultValue: unknown}}
      user: {header: {name: x-user}}
      path: {formatter: {value: '%REQ(:PATH)%'}}
  metrics:
  - providers: [{name: prometheus}]
    reportingInterval: 15s
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides:
        request_host: {value: request.host}
        response_flags: {operation: REMOVE}
    - match: {customMetric: my_metric}
      disabled: true
  accessLogging:
  - match: {mode: CLIENT_AND_SERVER}
    providers: [{name: envoy}]
    disabled: false
    filter:
      expression: response.code >= 400 || xds.cluster_name == 'BlackHoleCluster'
",
    );
    assert_eq!(issues(&text), Vec::<String>::new());
    let load = load_text("t.yaml", &text, &LoadOptions::default());
    let Resource::Telemetry(t) = &load.loaded[0].resource else {
        panic!()
    };
    let tags = &t.spec.tracing[0].custom_tags;
    assert!(matches!(&tags["pod"], CustomTag::Environment(e) if e.name == "POD_NAME"));
    let overrides = &t.spec.metrics[0].overrides[0];
    assert_eq!(
        overrides.match_.as_ref().unwrap().metric,
        Some(IstioMetric::RequestCount)
    );
    assert_eq!(
        overrides.tag_overrides["response_flags"].operation,
        Some(TagOperation::Remove)
    );
}

#[test]
fn providers_need_names_and_tracing_takes_one() {
    let text = telemetry(
        "  tracing:
  - providers: [{name: ''}, {name: b}]
  - {}
  metrics:
  - providers: [{}]
",
    );
    assert_eq!(
        issues(&text),
        vec!["spec.metrics[0].providers[0].name: is required",]
    );
    let text = telemetry("  tracing:\n  - providers: [{name: ''}, {name: b}]\n  - {}\n");
    assert_eq!(
        issues(&text),
        vec![
            "spec.tracing: only the first tracing entry is used; merge them into one",
            "spec.tracing[0].providers: only one tracing provider is used; list just one",
            "spec.tracing[0].providers[0].name: must not be empty",
        ]
    );
}

#[test]
fn sampling_is_a_percentage() {
    let found = issues(&telemetry(
        "  tracing:\n  - randomSamplingPercentage: 150\n",
    ));
    assert_eq!(
        found,
        vec![
            "spec.tracing[0].randomSamplingPercentage: percentage must be between 0 and 100 (got 150)"
        ]
    );
}

#[test]
fn custom_tags_take_one_non_empty_source() {
    let text = telemetry(
        "  tracing:
  - customTags:
      a: {literal: {value: ''}}
      b: {header: {name: ''}, literal: {value: x}}
      c: {}
      d: {environment: {}}
",
    );
    let found = issues(&text);
    assert_eq!(
        found,
        vec![
            "spec.tracing[0].customTags.b: only one of literal, environment, header or formatter may be set",
            "spec.tracing[0].customTags.d.environment.name: is required",
        ]
    );
    let text =
        telemetry("  tracing:\n  - customTags:\n      a: {literal: {value: ''}}\n      c: {}\n");
    assert_eq!(
        issues(&text),
        vec![
            "spec.tracing[0].customTags.a.literal.value: must not be empty",
            "spec.tracing[0].customTags.c: sets none of literal, environment, header or formatter, so the tag is not added",
        ]
    );
}

#[test]
fn metric_overrides_are_checked() {
    let text = telemetry(
        "  metrics:
  - reportingInterval: 500us
    overrides:
    - match: {metric: REQUEST_COUNT, customMetric: ''}
      tagOverrides:
        a: {}
        b: {operation: UPSERT, value: ''}
        c: {operation: REMOVE, value: x}
        d: {operation: REMOVE}
",
    );
    assert_eq!(
        issues(&text),
        vec![
            "spec.metrics[0].overrides[0].match: only one of metric, customMetric may be set (found metric and customMetric)",
            "spec.metrics[0].overrides[0].match.customMetric: must not be empty",
            "spec.metrics[0].overrides[0].tagOverrides.a.value: must be set when the operation is UPSERT",
            "spec.metrics[0].overrides[0].tagOverrides.b.value: must be set when the operation is UPSERT",
            "spec.metrics[0].overrides[0].tagOverrides.c.value: must not be set when the operation is REMOVE",
            "spec.metrics[0].reportingInterval: must be at least 1ms (got 500us)",
        ]
    );
    let found = issues(&telemetry(
        "  metrics:\n  - overrides:\n    - tagOverrides:\n        v: {value: 'v1.2'}\n",
    ));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with(
            "spec.metrics[0].overrides[0].tagOverrides.v.value: is computed as a CEL expression"
        ),
        "{found:?}"
    );
}

#[test]
fn access_log_filters_must_parse() {
    let found = issues(&telemetry(
        "  accessLogging:\n  - filter: {expression: 'response.code >= '}\n",
    ));
    assert_eq!(
        found,
        vec![
            "spec.accessLogging[0].filter.expression: must be a valid CEL expression: syntax error at character 18: expected an expression, found the end of the expression"
        ]
    );
    let found = issues(&telemetry("  accessLogging:\n  - filter: {}\n"));
    assert!(
        found[0]
            .starts_with("spec.accessLogging[0].filter.expression: must be a valid CEL expression")
    );
}

#[test]
fn enums_are_the_crd_values() {
    let found = issues(&telemetry("  tracing:\n  - match: {mode: BOTH}\n"));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("spec.tracing[0].match.mode: unknown value `BOTH`"),
        "{found:?}"
    );
}
