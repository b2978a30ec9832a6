//! The kinds Trellis reads, and [`Resource`]: one typed, validated configuration object.
//!
//! Every kind is listed once, in the table at the bottom of this file, with its API group, the
//! versions it is served in and its spec type; dispatch by `apiVersion`/`kind`, validation and
//! serialisation all come from that table.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::ObjectMeta;
use crate::types::Opaque;
use crate::validate::{FieldIssue, Validate, Validator};
use crate::{extensions, kube, networking, security, telemetry};

/// A whole object as written: `apiVersion`, `kind`, `metadata`, `spec` and any `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: S,
    /// Written by the API server; carried along, never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Opaque>,
}

/// A kind's `spec`: its own rules, plus any rules that need the object's metadata.
pub trait Spec: Validate {
    /// Rules that involve the object's name or namespace; issues are reported from the root
    /// (`metadata.name`, `spec.exportTo[0]`).
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        let _ = (meta, v);
    }
}

impl<S: Spec + KindSpec> Object<S> {
    fn check(&self, v: &mut Validator) {
        v.nested("metadata", &self.metadata);
        if S::KIND.is_istio() {
            v.at("metadata", |v| {
                self.metadata.validate_istio_annotations(S::KIND.name(), v)
            });
        }
        v.nested("spec", &self.spec);
        self.spec.validate_object(&self.metadata, v);
    }
}

/// A spec type that is the spec of exactly one kind.
pub trait KindSpec: Sized {
    const KIND: Kind;

    /// The object, if `resource` is of this kind.
    fn object(resource: &Resource) -> Option<&Object<Self>>;
}

/// Facts about one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindInfo {
    pub kind: Kind,
    pub group: &'static str,
    pub versions: &'static [&'static str],
    pub namespaced: bool,
}

/// The Istio API groups: a kind in one of them that Trellis does not know is an error, not a
/// note, because it is surely configuration the mesh was meant to act on.
pub const ISTIO_GROUPS: [&str; 4] = [
    "networking.istio.io",
    "security.istio.io",
    "telemetry.istio.io",
    "extensions.istio.io",
];

/// Splits an `apiVersion` into group and version (`v1` is the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

macro_rules! kinds {
    ($( $kind:ident ($spec:ty) in $group:literal [$($version:literal),+] $scope:ident; )+) => {
        /// Every kind Trellis reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($kind,)+
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)+];

            pub fn info(self) -> KindInfo {
                match self {
                    $(Kind::$kind => KindInfo {
                        kind: self,
                        group: $group,
                        versions: &[$($version),+],
                        namespaced: kinds!(@namespaced $scope),
                    },)+
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => stringify!($kind),)+
                }
            }
        }

        $(impl KindSpec for $spec {
            const KIND: Kind = Kind::$kind;

            fn object(resource: &Resource) -> Option<&Object<Self>> {
                match resource {
                    Resource::$kind(object) => Some(object.as_ref()),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        })+

        /// One typed configuration object (boxed: kinds differ a lot in size).
        #[derive(Debug, Clone, PartialEq)]
        pub enum Resource {
            $($kind(Box<Object<$spec>>),)+
        }

        impl Resource {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Resource::$kind(_) => Kind::$kind,)+
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Resource::$kind(o) => &o.metadata,)+
                }
            }

            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Resource::$kind(o) => &mut o.metadata,)+
                }
            }

            pub fn api_version(&self) -> &str {
                match self {
                    $(Resource::$kind(o) => &o.api_version,)+
                }
            }

            /// Every rule this object breaks, with field paths from the document root.
            pub fn validate(&self) -> Vec<FieldIssue> {
                let mut v = Validator::new();
                match self {
                    $(Resource::$kind(o) => o.check(&mut v),)+
                }
                v.into_issues()
            }

            /// The object as plain data, for output and round trips.
            pub fn to_value(&self) -> Value {
                let value = match self {
                    $(Resource::$kind(o) => serde_json::to_value(o),)+
                };
                value.expect("configuration types serialise to JSON")
            }

            /// Reads a document of the given kind, without validating it: the object, if every
            /// known field could be read, and every field that could not (unknown fields
            /// included).
            pub fn read(kind: Kind, value: &Value) -> (Option<Resource>, Vec<FieldIssue>) {
                match kind {
                    $(Kind::$kind => {
                        let (object, issues) = crate::load::decode::<Object<$spec>>(value);
                        (object.map(|o| Resource::$kind(Box::new(o))), issues)
                    })+
                }
            }
        }
    };
    (@namespaced namespaced) => { true };
    (@namespaced cluster) => { false };
}

kinds! {
    VirtualService(networking::VirtualService) in "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] namespaced;
    DestinationRule(networking::DestinationRule) in "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] namespaced;
    Gateway(networking::Gateway) in "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] namespaced;
    ServiceEntry(networking::ServiceEntry) in "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] namespaced;
    WorkloadEntry(networking::WorkloadEntry) in "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] namespaced;
    WorkloadGroup(networking::WorkloadGroup) in "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] namespaced;
    Sidecar(networking::Sidecar) in "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] namespaced;
    EnvoyFilter(networking::EnvoyFilter) in "networking.istio.io" ["v1alpha3"] namespaced;
    ProxyConfig(networking::ProxyConfig) in "networking.istio.io" ["v1beta1"] namespaced;
    PeerAuthentication(security::PeerAuthentication) in "security.istio.io" ["v1", "v1beta1"] namespaced;
    RequestAuthentication(security::RequestAuthentication) in "security.istio.io" ["v1", "v1beta1"] namespaced;
    AuthorizationPolicy(security::AuthorizationPolicy) in "security.istio.io" ["v1", "v1beta1"] namespaced;
    Telemetry(telemetry::Telemetry) in "telemetry.istio.io" ["v1", "v1alpha1"] namespaced;
    WasmPlugin(extensions::WasmPlugin) in "extensions.istio.io" ["v1alpha1"] namespaced;
    Service(kube::ServiceSpec) in "" ["v1"] namespaced;
    Pod(kube::PodSpec) in "" ["v1"] namespaced;
    Namespace(kube::NamespaceSpec) in "" ["v1"] cluster;
    Deployment(kube::DeploymentSpec) in "apps" ["v1"] namespaced;
}

impl Kind {
    /// Looks a kind up by group and name.
    pub fn find(group: &str, name: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name && k.info().group == group)
    }

    pub fn is_istio(self) -> bool {
        ISTIO_GROUPS.contains(&self.info().group)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Resource {
    pub fn name(&self) -> &str {
        &self.meta().name
    }

    pub fn namespace(&self) -> &str {
        &self.meta().namespace
    }

    /// `Kind namespace/name`, as findings name a resource.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.kind(), self.meta().full_name())
    }
}

/// One definition per kind, namespace and name: a later resource replaces an earlier one of
/// the same identity, in the earlier one's place (as applying files in order does).
pub fn latest_definitions(resources: impl IntoIterator<Item = Resource>) -> Vec<Resource> {
    let mut out: Vec<Resource> = Vec::new();
    let mut index: std::collections::HashMap<(Kind, String, String), usize> =
        std::collections::HashMap::new();
    for resource in resources {
        let key = (
            resource.kind(),
            resource.namespace().to_owned(),
            resource.name().to_owned(),
        );
        match index.get(&key) {
            Some(&at) => out[at] = resource,
            None => {
                index.insert(key, out.len());
                out.push(resource);
            }
        }
    }
    out
}
