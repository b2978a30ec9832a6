//! Who talks to whom, in the words of Istio's metric labels: the workloads on either side of a
//! request, who reports it, the protocol and the connection's security policy.
//!
//! Label values are resolved once, when an edge is built (empty values become `unknown`, the
//! canonical service and revision are derived as Istio derives them), so recording a request
//! only touches numbers.

use std::fmt::{self, Display, Write as _};
use std::sync::Arc;

use prometheus_client::encoding::LabelSetEncoder;
use trellis_api::types::Labels;
use trellis_proxy_config::ServiceRef;

/// What Istio writes where a value is not known.
pub const UNKNOWN: &str = "unknown";

/// One workload as metrics name it. Empty fields are reported as `unknown`.
///
/// The proxy's own identity ([`ProxyIdentity`]) is fixed for its lifetime; a peer's identity is
/// whatever the proxy learnt about the other side (endpoint labels, the peer certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// The workload name, e.g. the Deployment (`reviews-v1`).
    pub workload: String,
    pub namespace: String,
    /// The `app` label.
    pub app: String,
    /// The `version` label.
    pub version: String,
    /// The SPIFFE identity, `spiffe://cluster.local/ns/default/sa/reviews`.
    pub principal: String,
    /// Istio's cluster ID (`Kubernetes` in a default install).
    pub cluster: String,
    /// `service.istio.io/canonical-name`; when empty: the app, else the workload name.
    pub canonical_service: String,
    /// `service.istio.io/canonical-revision`; when empty: the version, else `latest`.
    pub canonical_revision: String,
}

/// The identity of the workload this proxy serves (a gateway is its own workload).
pub type ProxyIdentity = WorkloadIdentity;

impl WorkloadIdentity {
    /// A workload described by its pod labels, read the way Istio reads them
    /// (`app`/`app.kubernetes.io/name`, `version`/`app.kubernetes.io/version`, and the
    /// `service.istio.io/canonical-*` labels).
    pub fn from_labels(workload: &str, namespace: &str, labels: &Labels) -> Self {
        let first = |keys: &[&str]| {
            keys.iter()
                .find_map(|key| labels.get(*key))
                .cloned()
                .unwrap_or_default()
        };
        Self {
            workload: workload.to_owned(),
            namespace: namespace.to_owned(),
            app: first(&["app", "app.kubernetes.io/name"]),
            version: first(&["version", "app.kubernetes.io/version"]),
            canonical_service: first(&[
                "service.istio.io/canonical-name",
                "app.kubernetes.io/name",
            ]),
            canonical_revision: first(&[
                "service.istio.io/canonical-revision",
                "app.kubernetes.io/version",
            ]),
            ..Self::default()
        }
    }

    /// A peer known only by its certificate: the principal, and the namespace read from a
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<account>` URI.
    pub fn from_principal(principal: &str) -> Self {
        let namespace = principal
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.split_once("/ns/"))
            .and_then(|(_, rest)| rest.split_once("/sa/"))
            .map_or("", |(namespace, _)| namespace);
        Self {
            principal: principal.to_owned(),
            namespace: namespace.to_owned(),
            ..Self::default()
        }
    }
}

/// Which side of the request reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The client side: outbound sidecars and gateways.
    Source,
    /// The server side: inbound sidecars.
    Destination,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Destination => "destination",
        }
    }
}

/// `request_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    Http,
    Grpc,
    Tcp,
}

impl RequestProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
            Self::Tcp => "tcp",
        }
    }
}

/// `connection_security_policy`. Istio only knows it on the destination side; the source side
/// reports `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConnectionSecurityPolicy {
    #[default]
    Unknown,
    /// Plain text.
    None,
    MutualTls,
}

impl ConnectionSecurityPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => UNKNOWN,
            Self::None => "none",
            Self::MutualTls => "mutual_tls",
        }
    }
}

/// One side's label values, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SideLabels {
    workload: Box<str>,
    namespace: Box<str>,
    principal: Box<str>,
    app: Box<str>,
    version: Box<str>,
    cluster: Box<str>,
    canonical_service: Box<str>,
    canonical_revision: Box<str>,
}

fn or_unknown(value: &str) -> Box<str> {
    if value.is_empty() {
        UNKNOWN.into()
    } else {
        value.into()
    }
}

fn first_set<'a>(values: &[&'a str]) -> &'a str {
    values.iter().copied().find(|v| !v.is_empty()).unwrap_or("")
}

impl SideLabels {
    pub(super) fn resolve(identity: Option<&WorkloadIdentity>) -> Self {
        let Some(id) = identity else {
            return Self::resolve(Some(&WorkloadIdentity::default()));
        };
        let known =
            !id.workload.is_empty() || !id.app.is_empty() || !id.canonical_service.is_empty();
        let revision = match first_set(&[&id.canonical_revision, &id.version]) {
            "" if known => "latest",
            revision => revision,
        };
        Self {
            workload: or_unknown(&id.workload),
            namespace: or_unknown(&id.namespace),
            principal: or_unknown(&id.principal),
            app: or_unknown(&id.app),
            version: or_unknown(&id.version),
            cluster: or_unknown(&id.cluster),
            canonical_service: or_unknown(first_set(&[
                &id.canonical_service,
                &id.app,
                &id.workload,
            ])),
            canonical_revision: or_unknown(revision),
        }
    }
}

/// The destination service's label values, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ServiceLabels {
    host: Box<str>,
    name: Box<str>,
    namespace: Box<str>,
}

impl ServiceLabels {
    pub(super) fn resolve(service: Option<&ServiceRef>) -> Self {
        let field = |f: fn(&ServiceRef) -> &str| or_unknown(service.map_or("", f));
        Self {
            host: field(|s| &s.host),
            name: field(|s| &s.name),
            namespace: field(|s| &s.namespace),
        }
    }
}

/// Everything an edge of the service graph is labelled with, except what depends on the
/// response. Hashed by content: the edge table interns one [`super::EdgeMetrics`] per value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct EdgeLabels {
    pub(super) reporter: Reporter,
    pub(super) source: Arc<SideLabels>,
    pub(super) destination: Arc<SideLabels>,
    pub(super) service: Arc<ServiceLabels>,
    pub(super) security: ConnectionSecurityPolicy,
}

/// Writes one `key="value"` label.
pub(super) fn put(set: &mut LabelSetEncoder<'_>, key: &str, value: impl Display) -> fmt::Result {
    let mut label = set.encode_label();
    let mut key_encoder = label.encode_label_key()?;
    key_encoder.write_str(key)?;
    let mut value_encoder = key_encoder.encode_label_value()?;
    write!(value_encoder, "{value}")?;
    value_encoder.finish()
}

impl EdgeLabels {
    /// The workload and service labels, in the order Istio documents them.
    pub(super) fn encode_peers(&self, set: &mut LabelSetEncoder<'_>) -> fmt::Result {
        let (s, d) = (&self.source, &self.destination);
        put(set, "reporter", self.reporter.as_str())?;
        put(set, "source_workload", &s.workload)?;
        put(set, "source_canonical_service", &s.canonical_service)?;
        put(set, "source_canonical_revision", &s.canonical_revision)?;
        put(set, "source_workload_namespace", &s.namespace)?;
        put(set, "source_principal", &s.principal)?;
        put(set, "source_app", &s.app)?;
        put(set, "source_version", &s.version)?;
        put(set, "source_cluster", &s.cluster)?;
        put(set, "destination_workload", &d.workload)?;
        put(set, "destination_workload_namespace", &d.namespace)?;
        put(set, "destination_principal", &d.principal)?;
        put(set, "destination_app", &d.app)?;
        put(set, "destination_version", &d.version)?;
        put(set, "destination_service", &self.service.host)?;
        put(set, "destination_service_name", &self.service.name)?;
        put(
            set,
            "destination_service_namespace",
            &self.service.namespace,
        )?;
        put(set, "destination_canonical_service", &d.canonical_service)?;
        put(set, "destination_canonical_revision", &d.canonical_revision)?;
        put(set, "destination_cluster", &d.cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_unknowns_and_canonical_names_as_istio_does() {
        let unknown = SideLabels::resolve(None);
        assert_eq!(&*unknown.canonical_service, "unknown");
        assert_eq!(&*unknown.canonical_revision, "unknown");

        let labels: Labels = [("app", "reviews")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let side = SideLabels::resolve(Some(&WorkloadIdentity::from_labels(
            "reviews-v1",
            "default",
            &labels,
        )));
        assert_eq!(&*side.app, "reviews");
        assert_eq!(&*side.version, "unknown");
        assert_eq!(&*side.canonical_service, "reviews");
        assert_eq!(&*side.canonical_revision, "latest");
        assert_eq!(&*side.principal, "unknown");
    }

    #[test]
    fn reads_the_namespace_from_a_spiffe_principal() {
        let id = WorkloadIdentity::from_principal("spiffe://cluster.local/ns/shop/sa/cart");
        assert_eq!(id.namespace, "shop");
        assert_eq!(WorkloadIdentity::from_principal("not-spiffe").namespace, "");
    }
}
