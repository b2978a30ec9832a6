//! Typed values that configuration fields hold instead of bare strings and numbers.

mod duration;
pub mod names;
mod percent;
mod port;
mod protocol;
mod regex;
mod selector;
mod string_match;

pub use duration::{Duration, DurationError};
pub use percent::{Percent, Percentage};
pub use port::Port;
pub use protocol::Protocol;
pub use regex::Regex;
pub use selector::{
    LabelSelector, LabelSelectorRequirement, Labels, PolicyTargetReference, SelectorOperator,
    WorkloadSelector, format_selector, labels_match, validate_labels, validate_policy_attachment,
    validate_selector_labels,
};
pub use string_match::StringMatch;

/// Free-form data the configuration carries without Trellis reading into it (an EnvoyFilter
/// patch, a Wasm plugin's configuration, a Kubernetes field the mesh does not use). It is kept
/// as written, so nothing is dropped.
pub type Opaque = serde_json::Value;
