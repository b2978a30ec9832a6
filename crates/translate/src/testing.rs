//! Test helpers: resources from YAML text, registries, and Istio's samples.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use trellis_api::{LoadOptions, Resource, load_text};

use crate::{GatewayOptions, Registry, Translation};

/// The resources of a YAML text, which must all load.
pub(crate) fn load(yaml: &str) -> Vec<Resource> {
    let file = load_text("test.yaml", yaml, &LoadOptions::default());
    assert!(file.syntax.is_none(), "{:?}", file.syntax);
    let rejected: Vec<String> = file
        .rejected
        .iter()
        .flat_map(|r| {
            r.issues
                .iter()
                .map(move |i| format!("{:?} {:?}: {i}", r.kind, r.name))
        })
        .collect();
    assert!(rejected.is_empty(), "{rejected:#?}");
    file.loaded.into_iter().map(|l| l.resource).collect()
}

/// A resolver that knows no name.
pub(crate) fn no_dns(_: &str) -> Vec<IpAddr> {
    Vec::new()
}

/// The gateway configuration of a YAML text, its registry built from the same text without
/// DNS, for a proxy that applies every Gateway, listening on 0.0.0.0.
pub(crate) fn translate(yaml: &str) -> Translation {
    translate_with(yaml, &GatewayOptions::new([0, 0, 0, 0].into()))
}

pub(crate) fn translate_with(yaml: &str, options: &GatewayOptions) -> Translation {
    let resources = load(yaml);
    let registry = Registry::from_resources(&resources, &no_dns);
    crate::gateway(&resources, &registry, options)
}

/// Istio's reference tree: `$TRELLIS_REFERENCE_DIR`, or `shared/reference/istio` in a directory
/// above this crate.
pub(crate) fn reference_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_REFERENCE_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/reference/istio"))
        .find(|candidate| candidate.is_dir())
        .expect("shared/reference/istio not found above the checkout; set TRELLIS_REFERENCE_DIR")
}

/// Asserts that some warning contains every one of `words`.
#[track_caller]
pub(crate) fn assert_warned(translation: &Translation, words: &[&str]) {
    assert!(
        translation
            .warnings
            .iter()
            .any(|w| words.iter().all(|word| w.contains(word))),
        "no warning mentions {words:?}: {:#?}",
        translation.warnings
    );
}

/// A Gateway `default/gw` serving HTTP for every host on port 80, services `a`, `b` and
/// `reviews` of namespace `default` (port 80 `http`; reviews with v1 and v2 endpoints), and
/// the VirtualService `default/vs` for every host at that gateway with these HTTP rules
/// (block YAML, written unindented), plus `extra` documents.
pub(crate) fn http_rules(rules: &str, extra: &str) -> Translation {
    translate(&format!("{}\n---\n{extra}", http_fixture(rules)))
}

pub(crate) fn http_fixture(rules: &str) -> String {
    let rules: Vec<String> = rules.lines().map(|l| format!("  {l}")).collect();
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: services, namespace: default}}
spec:
  hosts: [a.default.svc.cluster.local, b.default.svc.cluster.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 10.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 10.0.1.1, labels: {{version: v1}}}}
  - {{address: 10.0.1.2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
{}
"#,
        rules.join("\n")
    )
}

/// The routes of the virtual host for `*` on port 80.
pub(crate) fn star_routes(translation: &Translation) -> Vec<trellis_proxy_config::Route> {
    let table = translation
        .config
        .routes
        .get("http.80")
        .expect("route table http.80");
    let host = table
        .virtual_hosts
        .iter()
        .find(|h| h.domains == ["*"])
        .expect("virtual host *");
    host.routes.clone()
}

/// The forward action of a route.
#[track_caller]
pub(crate) fn forward(route: &trellis_proxy_config::Route) -> &trellis_proxy_config::Forward {
    match &route.action {
        trellis_proxy_config::Action::Forward(forward) => forward,
        other => panic!("expected a forward, got {other:?}"),
    }
}
