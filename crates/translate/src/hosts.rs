//! Host names as Istio compares them: short names completed with a namespace, wildcards
//! (`*`, `*.example.com`) that cover narrower names, the `namespace/host` entries of gateway
//! servers, `exportTo` visibility, and references to gateways.
//!
//! Every other module asks these questions the same way, so they live in one place.

pub(crate) use trellis_api::analyze::to_fqdn;
use trellis_api::networking::MESH_GATEWAY;

/// Whether every name `host` stands for is also a name of `pattern` (Istio's `SubsetOf`, with
/// the arguments swapped): `*.example.com` covers `a.example.com` and `*.a.example.com`, but not
/// `example.com`; `*` covers everything.
pub(crate) fn covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.strip_prefix('*').unwrap_or(host).ends_with(suffix),
        None => pattern == host,
    }
}

/// The names two hosts share, as one host: the narrower of the two when one covers the other
/// (Istio's `Names.Intersection` for a pair). `None` when neither covers the other, which for
/// two wildcards or two exact names means they share nothing (or cannot be written as one host).
pub(crate) fn intersect<'a>(a: &'a str, b: &'a str) -> Option<&'a str> {
    if covers(b, a) {
        Some(a)
    } else if covers(a, b) {
        Some(b)
    } else {
        None
    }
}

/// Whether two hosts share any name (Istio's `Name.Matches`): either covers the other, or both
/// are wildcards of which one ends with the other.
pub(crate) fn overlap(a: &str, b: &str) -> bool {
    intersect(a, b).is_some()
}

/// One `hosts` entry of a gateway server: `namespace/host`, where the namespace is `*` (any),
/// `.` (the gateway's own) or a name; a bare host means `*/host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerHost<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) host: &'a str,
}

impl<'a> ServerHost<'a> {
    pub(crate) fn parse(entry: &'a str) -> Self {
        match entry.split_once('/') {
            Some((namespace, host)) => Self { namespace, host },
            None => Self {
                namespace: "*",
                host: entry,
            },
        }
    }

    /// Whether VirtualServices in `namespace` may bind to this host of a gateway in
    /// `gateway_namespace`.
    pub(crate) fn offered_to(&self, gateway_namespace: &str, namespace: &str) -> bool {
        match self.namespace {
            "*" => true,
            "." => gateway_namespace == namespace,
            other => other == namespace,
        }
    }
}

/// Whether a resource of namespace `own` with this `exportTo` list is visible in namespace
/// `to`: an empty list (the mesh default) or `*` exports everywhere, `.` to its own namespace,
/// `~` to none.
pub(crate) fn exported_to(export_to: &[String], own: &str, to: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|entry| match entry.as_str() {
            "*" => true,
            "." => own == to,
            "~" => false,
            namespace => namespace == to,
        })
}

/// A gateway reference of a VirtualService (`namespace/name`, or a name in the
/// VirtualService's `namespace`) as `namespace/name`; `None` for `mesh` (the sidecars).
pub(crate) fn qualify_gateway(reference: &str, namespace: &str) -> Option<String> {
    if reference == MESH_GATEWAY {
        None
    } else if reference.contains('/') {
        Some(reference.to_owned())
    } else {
        Some(format!("{namespace}/{reference}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_narrower_names_only() {
        assert!(covers("*", "a.example.com"));
        assert!(covers("*", "*"));
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "*.a.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("a.example.com", "*.example.com"));
        assert!(!covers("a.example.com", "b.example.com"));
    }

    #[test]
    fn intersection_keeps_the_narrower_host() {
        assert_eq!(intersect("*", "*"), Some("*"));
        assert_eq!(intersect("*", "a.com"), Some("a.com"));
        assert_eq!(intersect("a.com", "*"), Some("a.com"));
        assert_eq!(
            intersect("*.example.com", "a.example.com"),
            Some("a.example.com")
        );
        assert_eq!(
            intersect("*.a.example.com", "*.example.com"),
            Some("*.a.example.com")
        );
        assert_eq!(intersect("a.com", "b.com"), None);
        assert!(overlap("*.com", "a.com"));
        assert!(!overlap("*.org", "a.com"));
    }

    #[test]
    fn server_hosts_are_offered_by_namespace() {
        let bare = ServerHost::parse("a.com");
        assert_eq!(bare.namespace, "*");
        assert!(bare.offered_to("istio-system", "default"));
        let own = ServerHost::parse("./a.com");
        assert_eq!(own.host, "a.com");
        assert!(own.offered_to("default", "default"));
        assert!(!own.offered_to("istio-system", "default"));
        let named = ServerHost::parse("prod/*");
        assert_eq!(named.host, "*");
        assert!(named.offered_to("istio-system", "prod"));
        assert!(!named.offered_to("istio-system", "default"));
    }

    #[test]
    fn export_to_decides_visibility() {
        let list = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert!(exported_to(&[], "a", "b"));
        assert!(exported_to(&list(&["*"]), "a", "b"));
        assert!(exported_to(&list(&["."]), "a", "a"));
        assert!(!exported_to(&list(&["."]), "a", "b"));
        assert!(exported_to(&list(&[".", "b"]), "a", "b"));
        assert!(!exported_to(&list(&["~"]), "a", "a"));
    }

    #[test]
    fn gateway_references_are_qualified() {
        assert_eq!(qualify_gateway("mesh", "default"), None);
        assert_eq!(
            qualify_gateway("web", "default").as_deref(),
            Some("default/web")
        );
        assert_eq!(
            qualify_gateway("istio-system/web", "default").as_deref(),
            Some("istio-system/web")
        );
    }
}
