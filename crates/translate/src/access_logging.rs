//! Whether a proxy writes access logs, from Istio's `Telemetry` resources.
//!
//! As in Istio, the most specific Telemetry wins: one whose selector matches the proxy's
//! labels, else one without a selector in the proxy's namespace, else one without a selector in
//! the root namespace (the mesh default). Within it, an `accessLogging` entry with
//! `disabled: true` turns logs off, and one naming the built-in `envoy` provider turns text
//! logs on. Other providers need the mesh configuration, which the proxy does not read yet.

use trellis_api::Resource;
use trellis_api::meta::ROOT_NAMESPACE;
use trellis_api::telemetry::Telemetry;
use trellis_api::types::Labels;

/// The provider every mesh has: text access logs on the proxy's standard output.
pub const ENVOY_PROVIDER: &str = "envoy";

/// What the Telemetry resources say about access logs for a proxy in `namespace` with
/// `labels`: `Some(true)` on, `Some(false)` off, `None` when no Telemetry says anything.
pub fn access_logging(
    resources: &[Resource],
    namespace: &str,
    labels: Option<&Labels>,
) -> Option<bool> {
    let telemetries: Vec<(&str, &Telemetry)> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Telemetry(t) => Some((t.metadata.namespace.as_str(), &t.spec)),
            _ => None,
        })
        .filter(|(_, t)| !t.access_logging.is_empty())
        .collect();
    let selecting = telemetries.iter().find(|(ns, t)| {
        *ns == namespace
            && t.selector
                .as_ref()
                .is_some_and(|s| labels.is_some_and(|l| !s.match_labels.is_empty() && s.matches(l)))
    });
    let namespace_default = telemetries
        .iter()
        .find(|(ns, t)| *ns == namespace && t.selector.is_none() && t.target_refs.is_empty());
    let mesh_default = telemetries
        .iter()
        .find(|(ns, t)| *ns == ROOT_NAMESPACE && t.selector.is_none() && t.target_refs.is_empty());
    let (_, telemetry) = selecting.or(namespace_default).or(mesh_default)?;
    let mut decision = None;
    for logging in &telemetry.access_logging {
        if logging.disabled == Some(true) {
            decision = Some(false);
        } else if logging.providers.iter().any(|p| p.name == ENVOY_PROVIDER) {
            decision = Some(true);
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_api::{LoadOptions, load_text};

    fn resources(text: &str) -> Vec<Resource> {
        let load = load_text("t.yaml", text, &LoadOptions::default());
        assert!(load.is_clean(), "{:?}", load.rejected);
        load.loaded.into_iter().map(|l| l.resource).collect()
    }

    const MESH_ON: &str = "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: envoy}]
";

    #[test]
    fn the_mesh_default_turns_logs_on() {
        let labels = Labels::from([("istio".to_owned(), "ingressgateway".to_owned())]);
        assert_eq!(
            access_logging(&resources(MESH_ON), "istio-system", Some(&labels)),
            Some(true)
        );
        assert_eq!(access_logging(&[], "istio-system", None), None);
    }

    #[test]
    fn the_most_specific_telemetry_wins() {
        let text = format!(
            "{MESH_ON}---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: quiet-gateway, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  accessLogging:
  - disabled: true
"
        );
        let all = resources(&text);
        let gateway = Labels::from([("istio".to_owned(), "ingressgateway".to_owned())]);
        let other = Labels::from([("istio".to_owned(), "egressgateway".to_owned())]);
        assert_eq!(
            access_logging(&all, "istio-system", Some(&gateway)),
            Some(false)
        );
        assert_eq!(
            access_logging(&all, "istio-system", Some(&other)),
            Some(true)
        );
    }
}
