//! `telemetry.istio.io`: `Telemetry`, which tunes the metrics, traces and access logs workloads
//! produce and the providers (named in the mesh config) that receive them.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};

use crate::resource::Spec;
use crate::security::validate_attachment;
use crate::types::{Duration, Percentage, PolicyTargetReference, WorkloadSelector};
use crate::validate::{Validate, Validator};

pub mod cel;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Telemetry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<Tracing>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
}

/// Istio's `Tracing`: how spans are sampled, tagged and reported.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<TracingSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<Percentage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_context_propagation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_request_id_for_trace_sampling: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_istio_tags: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
}

/// Istio's `Tracing.TracingSelector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracingSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio's `Tracing.CustomTag`: where a span tag's value comes from (one of the four).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CustomTagFields", into = "CustomTagFields")]
pub enum CustomTag {
    /// `{}`: no source given; the tag is not added.
    Unset,
    Literal(Literal),
    Environment(Environment),
    Header(RequestHeader),
    Formatter(Formatter),
}

/// Istio's `Tracing.Literal`: a fixed value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Literal {
    pub value: String,
}

/// Istio's `Tracing.Environment`: a variable of the proxy's environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}

/// Istio's `Tracing.RequestHeader`: a header of the request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}

/// Istio's `Tracing.Formatter`: an access-log style format string (`%REQ(:PATH)%`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Formatter {
    pub value: String,
}

/// The wire form of [`CustomTag`]: a protobuf oneof.
#[derive(Serialize, Deserialize)]
struct CustomTagFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    literal: Option<Literal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<RequestHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    formatter: Option<Formatter>,
}

impl TryFrom<CustomTagFields> for CustomTag {
    type Error = &'static str;

    fn try_from(fields: CustomTagFields) -> Result<Self, Self::Error> {
        match (
            fields.literal,
            fields.environment,
            fields.header,
            fields.formatter,
        ) {
            (None, None, None, None) => Ok(Self::Unset),
            (Some(literal), None, None, None) => Ok(Self::Literal(literal)),
            (None, Some(environment), None, None) => Ok(Self::Environment(environment)),
            (None, None, Some(header), None) => Ok(Self::Header(header)),
            (None, None, None, Some(formatter)) => Ok(Self::Formatter(formatter)),
            _ => Err("only one of literal, environment, header or formatter may be set"),
        }
    }
}

impl From<CustomTag> for CustomTagFields {
    fn from(tag: CustomTag) -> Self {
        let mut fields = Self {
            literal: None,
            environment: None,
            header: None,
            formatter: None,
        };
        match tag {
            CustomTag::Unset => {}
            CustomTag::Literal(l) => fields.literal = Some(l),
            CustomTag::Environment(e) => fields.environment = Some(e),
            CustomTag::Header(h) => fields.header = Some(h),
            CustomTag::Formatter(f) => fields.formatter = Some(f),
        }
        fields
    }
}

/// Istio's `ProviderRef`: a provider defined in the mesh config's `extensionProviders`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    pub name: String,
}

/// Istio's `Metrics`: which metrics are reported to which providers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverrides>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<Duration>,
}

/// Istio's `MetricsOverrides`: turn metrics off or change their tags.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsOverrides {
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetricSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// Istio's `MetricSelector`: a standard metric or a custom one (at most one), and the side.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<IstioMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio's `MetricSelector.IstioMetric`: the standard metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioMetric {
    AllMetrics,
    RequestCount,
    RequestDuration,
    RequestSize,
    ResponseSize,
    TcpOpenedConnections,
    TcpClosedConnections,
    TcpSentBytes,
    TcpReceivedBytes,
    GrpcRequestMessages,
    GrpcResponseMessages,
}

/// Istio's `MetricsOverrides.TagOverride`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagOverride {
    /// UPSERT when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<TagOperation>,
    /// A CEL expression computing the tag's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Istio's `MetricsOverrides.TagOverride.Operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagOperation {
    #[default]
    Upsert,
    Remove,
}

/// Istio's `AccessLogging`: where access logs go, and which requests are logged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogging {
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<LogSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

/// Istio's `AccessLogging.LogSelector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio's `AccessLogging.Filter`: a CEL expression; only matching requests are logged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub expression: String,
}

/// Istio's telemetry `WorkloadMode`: which side of a connection a setting applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    #[default]
    ClientAndServer,
    Client,
    Server,
}

impl Spec for Telemetry {}

impl Validate for Telemetry {
    fn validate(&self, v: &mut Validator) {
        validate_attachment(
            v,
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
        );
        if self.tracing.len() > 1 {
            v.warn_at(
                "tracing",
                "only the first tracing entry is used; merge them into one",
            );
        }
        v.nested("tracing", &self.tracing);
        v.nested("metrics", &self.metrics);
        v.nested("accessLogging", &self.access_logging);
    }
}

fn check_providers(providers: &[ProviderRef], v: &mut Validator) {
    v.each("providers", providers, |v, provider| {
        if provider.name.is_empty() {
            v.error_at("name", "must not be empty");
        }
    });
}

impl Validate for Tracing {
    fn validate(&self, v: &mut Validator) {
        if self.providers.len() > 1 {
            v.warn_at(
                "providers",
                "only one tracing provider is used; list just one",
            );
        }
        check_providers(&self.providers, v);
        v.at("customTags", |v| {
            for (name, tag) in &self.custom_tags {
                v.at(name, |v| {
                    if name.is_empty() {
                        v.error("a tag name must not be empty");
                    }
                    tag.validate(v);
                });
            }
        });
    }
}

impl Validate for CustomTag {
    fn validate(&self, v: &mut Validator) {
        let (key, field, value) = match self {
            Self::Unset => {
                return v.warn("sets none of literal, environment, header or formatter, so the tag is not added");
            }
            Self::Literal(l) => ("literal", "value", &l.value),
            Self::Environment(e) => ("environment", "name", &e.name),
            Self::Header(h) => ("header", "name", &h.name),
            Self::Formatter(f) => ("formatter", "value", &f.value),
        };
        if value.is_empty() {
            v.at(key, |v| v.error_at(field, "must not be empty"));
        }
    }
}

impl Validate for Metrics {
    fn validate(&self, v: &mut Validator) {
        check_providers(&self.providers, v);
        v.nested("overrides", &self.overrides);
        v.min_duration(
            "reportingInterval",
            self.reporting_interval.map(|d| d.as_std()),
            StdDuration::from_millis(1),
        );
    }
}

impl Validate for MetricsOverrides {
    fn validate(&self, v: &mut Validator) {
        if let Some(selector) = &self.match_ {
            v.at("match", |v| {
                v.at_most_one(&[
                    ("metric", selector.metric.is_some()),
                    ("customMetric", selector.custom_metric.is_some()),
                ]);
                if selector.custom_metric.as_deref() == Some("") {
                    v.error_at("customMetric", "must not be empty");
                }
            });
        }
        v.at("tagOverrides", |v| {
            for (name, tag) in &self.tag_overrides {
                v.at(name, |v| {
                    if name.is_empty() {
                        v.warn("a tag name should not be empty");
                    }
                    match (tag.operation.unwrap_or_default(), tag.value.as_deref()) {
                        (TagOperation::Upsert, None | Some("")) => {
                            v.error_at("value", "must be set when the operation is UPSERT")
                        }
                        (TagOperation::Remove, Some(_)) => {
                            v.error_at("value", "must not be set when the operation is REMOVE")
                        }
                        (TagOperation::Upsert, Some(value)) => {
                            if let Err(e) = cel::check(value) {
                                v.warn_at(
                                    "value",
                                    format!("is computed as a CEL expression, and this one does not parse ({e}); quote literal text, as in \"'v1'\""),
                                );
                            }
                        }
                        (TagOperation::Remove, None) => {}
                    }
                });
            }
        });
    }
}

impl Validate for AccessLogging {
    fn validate(&self, v: &mut Validator) {
        check_providers(&self.providers, v);
        if let Some(filter) = &self.filter
            && let Err(e) = cel::check(&filter.expression)
        {
            v.at("filter", |v| {
                v.error_at("expression", format!("must be a valid CEL expression: {e}"))
            });
        }
    }
}

#[cfg(test)]
mod tests;
