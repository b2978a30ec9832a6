//! Trellis's configuration API: Istio's resources (and the Kubernetes kinds a mesh reads) as
//! typed Rust values, read from YAML or JSON, validated with Istio's rules, and analysed as a
//! set.
//!
//! This crate does no I/O: callers hand it text and get back resources and diagnostics.
//!
//! - [`load`] turns a file's text into [`Resource`]s, reporting every problem with its field path
//!   and line;
//! - [`validate`] holds the rule-checking walk every kind implements;
//! - [`analyze`] runs cross-resource checks over a set of resources, with Istio's message codes.

pub mod analyze;
pub mod extensions;
#[cfg(feature = "fs")]
pub mod fs;
pub mod kube;
pub mod load;
pub mod meta;
pub mod networking;
pub mod path;
pub mod resource;
pub mod security;
pub mod telemetry;
pub mod types;
pub mod validate;
pub mod yaml;

#[cfg(test)]
mod testing;

pub use load::{FileLoad, LoadOptions, Loaded, Location, Origin, Rejected, Skipped, load_text};
pub use meta::ObjectMeta;
pub use path::FieldPath;
pub use resource::{Kind, Object, Resource, latest_definitions};
pub use validate::{FieldIssue, Severity};
