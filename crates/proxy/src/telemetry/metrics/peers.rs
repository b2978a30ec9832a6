//! Edges whose far side is known only once a connection says who it is: the destination's
//! principal from the certificate an endpoint showed (source reporting), and the client's from
//! the certificate it showed an inbound listener (destination reporting, with the connection's
//! security policy).

use std::sync::{Arc, Mutex, PoisonError};

use trellis_proxy_config::ServiceRef;

use super::edge::{EdgeMetrics, EdgeTable};
use super::labels::{
    ConnectionSecurityPolicy, EdgeLabels, Reporter, ServiceLabels, SideLabels, WorkloadIdentity,
};

/// A service's edges as this proxy reports them as the source, one per destination principal.
#[derive(Debug, Clone)]
pub struct DestinationEdges {
    pub(super) me: Arc<SideLabels>,
    pub(super) edges: Arc<EdgeTable>,
    pub(super) service: Arc<ServiceLabels>,
}

impl DestinationEdges {
    /// The edge to a destination that showed `principal`.
    pub fn to(&self, principal: &str) -> Arc<EdgeMetrics> {
        self.edges.intern(EdgeLabels {
            reporter: Reporter::Source,
            source: Arc::clone(&self.me),
            destination: Arc::new(SideLabels::resolve(Some(
                &WorkloadIdentity::from_principal(principal),
            ))),
            service: Arc::clone(&self.service),
            security: ConnectionSecurityPolicy::Unknown,
        })
    }
}

/// What one inbound connection says of its client, and the edge its requests were last
/// recorded on (a connection's requests nearly always go to one cluster).
#[derive(Debug)]
pub struct InboundPeer {
    source: WorkloadIdentity,
    security: ConnectionSecurityPolicy,
    /// The cluster (by name) and its edge.
    last: Mutex<Option<(Arc<str>, Arc<EdgeMetrics>)>>,
}

impl InboundPeer {
    /// A client that showed `principal` over the mesh's mutual TLS, or a plaintext one.
    pub fn new(principal: Option<&str>) -> Self {
        Self {
            source: principal.map_or_else(WorkloadIdentity::default, |p| {
                WorkloadIdentity::from_principal(p)
            }),
            security: match principal {
                Some(_) => ConnectionSecurityPolicy::MutualTls,
                None => ConnectionSecurityPolicy::None,
            },
            last: Mutex::new(None),
        }
    }

    /// Calls `record` with the edge of a request to the cluster named `cluster`, standing for
    /// `service`.
    pub fn with_edge<R>(
        &self,
        metrics: &super::Metrics,
        cluster: &str,
        service: Option<&ServiceRef>,
        record: impl FnOnce(&Arc<EdgeMetrics>) -> R,
    ) -> R {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let known = last.as_ref().filter(|(known, _)| **known == *cluster);
        if known.is_none() {
            let edge = metrics.inbound(service, Some(&self.source), self.security);
            *last = Some((Arc::from(cluster), edge));
        }
        let (_, edge) = last.as_ref().expect("the edge was just set");
        record(edge)
    }
}
