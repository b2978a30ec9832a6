//! The API server's rules for a pod spec that the mesh depends on: containers it can name,
//! images to run, and ports a service can refer to.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{Container, ContainerPort, EnvVar, PodSpec};
use crate::kube::check_port_name;
use crate::resource::Spec;
use crate::types::names::{is_dns1123_label, is_dns1123_subdomain};
use crate::validate::{Validate, Validator};

/// The largest UID or GID Kubernetes accepts.
const MAX_USER_ID: i64 = i32::MAX as i64;

impl Spec for PodSpec {}

impl Validate for PodSpec {
    fn validate(&self, v: &mut Validator) {
        if self.containers.is_empty() {
            v.error_at("containers", "a pod needs at least one container");
        }
        let host_network = self.host_network == Some(true);
        let mut names = HashSet::new();
        for (key, list) in [
            ("initContainers", &self.init_containers),
            ("containers", &self.containers),
        ] {
            v.each(key, list, |v, container| {
                if !container.name.is_empty() && !names.insert(container.name.as_str()) {
                    v.error_at(
                        "name",
                        format!(
                            "container name {:?} is used twice; names must be unique across containers and initContainers",
                            container.name
                        ),
                    );
                }
                container.check(host_network, v);
            });
        }
        for (key, name) in [
            ("serviceAccountName", &self.service_account_name),
            ("serviceAccount", &self.service_account),
        ] {
            if let Some(name) = name
                .as_deref()
                .filter(|n| !n.is_empty() && !is_dns1123_subdomain(n))
            {
                v.error_at(
                    key,
                    format!("{name:?} is not a valid service account name: use lowercase letters, digits, '-' and '.'"),
                );
            }
        }
        if let (Some(name), Some(old)) = (&self.service_account_name, &self.service_account)
            && !name.is_empty()
            && !old.is_empty()
            && name != old
        {
            v.warn_at(
                "serviceAccount",
                format!("is the deprecated spelling of serviceAccountName, which wins ({name:?}); remove it"),
            );
        }
        if let Some(context) = &self.security_context {
            v.at("securityContext", |v| check_user_id(context.run_as_user, v));
        }
    }
}

impl Container {
    fn check(&self, host_network: bool, v: &mut Validator) {
        if self.name.is_empty() {
            v.error_at("name", "is required");
        } else if !is_dns1123_label(&self.name) {
            v.error_at(
                "name",
                format!(
                    "{:?} is not a valid container name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
                    self.name
                ),
            );
        }
        match self.image.as_deref() {
            None | Some("") => v.error_at("image", "is required: name the container image to run"),
            Some(image) if image.trim() != image => {
                v.error_at("image", "must not start or end with whitespace");
            }
            Some(_) => {}
        }
        let mut port_names = HashSet::new();
        v.each("ports", &self.ports, |v, port| {
            if let Some(name) = port.name.as_deref() {
                if let Err(e) = check_port_name(name) {
                    v.error_at("name", e);
                } else if !port_names.insert(name) {
                    v.error_at(
                        "name",
                        format!("port name {name:?} is used twice in this container"),
                    );
                }
            }
            port.check(host_network, v);
        });
        v.each("env", &self.env, |v, var| var.check(v));
        if let Some(context) = &self.security_context {
            v.at("securityContext", |v| check_user_id(context.run_as_user, v));
        }
    }
}

impl ContainerPort {
    fn check(&self, host_network: bool, v: &mut Validator) {
        match self.host_port {
            Some(n) if n > 65535 => v.error_at(
                "hostPort",
                format!("port must be between 1 and 65535 (got {n})"),
            ),
            Some(n) if n > 0 && host_network && n != u32::from(self.container_port.get()) => v
                .error_at(
                    "hostPort",
                    format!(
                        "must be the same as containerPort ({}) when hostNetwork is true",
                        self.container_port
                    ),
                ),
            _ => {}
        }
        if let Some(ip) = self.host_ip.as_deref().filter(|ip| !ip.is_empty())
            && ip.parse::<IpAddr>().is_err()
        {
            v.error_at("hostIP", format!("{ip:?} is not an IP address"));
        }
    }
}

impl EnvVar {
    fn check(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error_at("name", "is required");
        } else if self.name.contains('=') {
            v.error_at(
                "name",
                format!(
                    "{:?} is not a valid variable name: it cannot contain '='",
                    self.name
                ),
            );
        }
        if self.value.as_deref().is_some_and(|value| !value.is_empty()) && self.value_from.is_some()
        {
            v.error_at(
                "valueFrom",
                "cannot be combined with a non-empty value; use one or the other",
            );
        }
    }
}

fn check_user_id(user: Option<i64>, v: &mut Validator) {
    if let Some(user) = user.filter(|u| !(0..=MAX_USER_ID).contains(u)) {
        v.error_at(
            "runAsUser",
            format!("must be between 0 and {MAX_USER_ID} (got {user})"),
        );
    }
}
