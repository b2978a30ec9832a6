//! The local mesh (`trellis up`): a whole mesh on one machine, with real traffic capture.
//!
//! Each workload replica is a pod: a network namespace joined to the mesh's bridge, with its
//! own address, its application's processes and a `trellis-proxy` sidecar, and iptables rules
//! in the namespace that capture its TCP traffic as Istio's init container does ([`net`]).
//! Every Service gets a virtual IP whose Kubernetes names resolve inside every pod (a hosts
//! file per pod). The control plane runs inside the runner's process; the runner registers
//! each pod with it (labels, address, service account) and hands each sidecar a bootstrap
//! token for its identity, so mutual TLS between pods is automatic. An ingress gateway pod
//! is published on a host address. See `docs/local-mesh.md`.

pub mod config_dir;
pub mod mesh;
pub mod net;
pub mod plan;
pub mod process;
pub mod state;

pub use mesh::{Options, up};
pub use net::{Cidr, Names};
pub use state::{Mode, Phase, State};

/// What can go wrong running the mesh.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{command}: {detail}")]
    Command { command: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the configuration cannot run:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    #[error("cleanup left things behind:\n  {}", .0.join("\n  "))]
    Cleanup(Vec<String>),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
