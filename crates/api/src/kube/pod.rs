//! `Pod` (core/v1), and the `PodSpec` that deployments' templates share: the containers a
//! workload runs, their ports, and the service account it runs as.

mod validate;

use serde::{Deserialize, Serialize};

use super::TransportProtocol;
use crate::types::{Opaque, Port};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The deprecated spelling of `serviceAccountName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,

    // Fields the mesh does not read, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_containers: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_gates: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_claims: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname_override: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<Opaque>,
    #[serde(
        rename = "setHostnameAsFQDN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub set_hostname_as_fqdn: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_aliases: Option<Opaque>,
    #[serde(rename = "hostPID", default, skip_serializing_if = "Option::is_none")]
    pub host_pid: Option<Opaque>,
    #[serde(rename = "hostIPC", default, skip_serializing_if = "Option::is_none")]
    pub host_ipc: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_users: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_process_namespace: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_gates: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Opaque>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    /// Required in pods and pod templates; optional in the schema only so that tools can fill
    /// it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,

    // Fields the mesh does not read, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy_rules: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_devices: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_path: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<Opaque>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: Port,
    /// An IANA service name, which a service's `targetPort` may refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TransportProtocol>,
    /// The port opened on the node for this one; 0 or absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u32>,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A reference to a secret, config map or field; kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Opaque>,
}

/// A container's `securityContext`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    /// The UID the container runs as (the mesh's proxy must not share it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,

    // Fields the mesh does not read, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_mount: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_options: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_options: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<Opaque>,
}

/// A pod's `securityContext`: defaults for all its containers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,

    // Fields the mesh does not read, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplemental_groups: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplemental_groups_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group_change_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_options: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_change_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_options: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<Opaque>,
}

impl PodSpec {
    /// The service account the pod runs as, if one is named (`serviceAccountName`, or its
    /// deprecated spelling `serviceAccount`).
    pub fn service_account(&self) -> Option<&str> {
        self.service_account_name
            .as_deref()
            .or(self.service_account.as_deref())
            .filter(|name| !name.is_empty())
    }

    /// Init containers, then the main containers.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.init_containers.iter().chain(&self.containers)
    }

    /// The UID a container runs as: its own `runAsUser`, else the pod's.
    pub fn run_as_user(&self, container: &Container) -> Option<i64> {
        container
            .security_context
            .as_ref()
            .and_then(|c| c.run_as_user)
            .or_else(|| self.security_context.as_ref().and_then(|c| c.run_as_user))
    }
}

impl ContainerPort {
    /// The port's protocol, `TCP` when not written.
    pub fn protocol(&self) -> TransportProtocol {
        self.protocol.unwrap_or_default()
    }
}
