//! The wire: the delta xDS transport ([`xds`], Envoy's `envoy.service.discovery.v3` messages)
//! and the resources it carries ([`wire`], `trellis.config.v1`, generated from `proto/`), with
//! their conversion to and from the proxy's configuration model; and Istio's certificate
//! service ([`ca`]).
//!
//! This is the only crate that sees the generated types. Encoding ([`encode`]) cannot fail;
//! decoding ([`decode`]) checks every field and names the one that is wrong, so a proxy can
//! refuse (NACK) a resource with a reason an operator can act on. Decoding is fuzzed
//! (`fuzz/fuzz_targets/xds_resources.rs`).

pub mod decode;
pub mod encode;
pub mod node;

pub use decode::{DecodeError, OnDemandHost, Resource, decode_resource};

/// Envoy's delta ADS messages and the gRPC service (client and server).
#[allow(
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    rust_2018_idioms
)]
pub mod xds {
    tonic::include_proto!("envoy.service.discovery.v3");
}

/// Istio's certificate service (`istio.v1.auth`): workload certificates on CSR.
#[allow(
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    rust_2018_idioms
)]
pub mod ca {
    tonic::include_proto!("istio.v1.auth");
}

/// The resource messages (`trellis.config.v1`).
#[allow(
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    rust_2018_idioms
)]
pub mod wire {
    tonic::include_proto!("trellis.config.v1");
}

/// The resource types, by type URL.
pub mod type_url {
    pub const LISTENER: &str = "type.googleapis.com/trellis.config.v1.Listener";
    pub const ROUTE_TABLE: &str = "type.googleapis.com/trellis.config.v1.RouteTable";
    pub const CLUSTER: &str = "type.googleapis.com/trellis.config.v1.Cluster";
    pub const ON_DEMAND_HOST: &str = "type.googleapis.com/trellis.config.v1.OnDemandHost";

    /// Every type, in the order a proxy applies them (what refers to something comes after it).
    pub const ALL: [&str; 4] = [CLUSTER, ON_DEMAND_HOST, ROUTE_TABLE, LISTENER];
}

#[cfg(test)]
mod tests;
