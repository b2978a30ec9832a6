//! What a translation could not do, said once each.
//!
//! Translation never fails: what it cannot express is left out and reported here, naming the
//! resource and field (`VirtualService default/bookinfo: spec.http[0].fault: ...`), so nothing
//! is dropped silently. The same problem met twice (a rule used by two hosts, a policy shared
//! by two clusters) is reported once.

use std::collections::HashSet;

use trellis_api::ObjectMeta;

#[derive(Debug, Default)]
pub(crate) struct Warnings {
    list: Vec<String>,
    seen: HashSet<String>,
}

impl Warnings {
    pub(crate) fn push(&mut self, warning: impl Into<String>) {
        let warning = warning.into();
        if self.seen.insert(warning.clone()) {
            self.list.push(warning);
        }
    }

    /// A warning about a field of a resource: `Kind namespace/name: path: message`.
    pub(crate) fn field(
        &mut self,
        kind: &str,
        meta: &ObjectMeta,
        path: &str,
        message: impl std::fmt::Display,
    ) {
        self.push(format!("{kind} {}: {path}: {message}", meta.full_name()));
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_warning_is_kept_once_in_order() {
        let mut w = Warnings::default();
        w.push("b");
        w.push("a");
        w.push("b");
        let meta = ObjectMeta {
            name: "x".into(),
            namespace: "ns".into(),
            ..Default::default()
        };
        w.field("Gateway", &meta, "spec.servers[0]", "skipped");
        assert_eq!(
            w.into_vec(),
            ["b", "a", "Gateway ns/x: spec.servers[0]: skipped"]
        );
    }
}
