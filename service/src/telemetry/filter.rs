//! Filters that keep the spans of an unsampled request from being made.

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{self, Filter};
use tracing_subscriber::registry::LookupSpan;

use super::request::request_sampled;

/// The OpenTelemetry layer's filter: this crate's spans and events, except spans made while
/// serving an unsampled request. tracing-opentelemetry would build them and the SDK would drop
/// them; not making them is what keeps tracing at a low sampling ratio cheap.
pub(super) struct SampledOnly {
    pub(super) targets: Targets,
}

impl<S> Filter<S> for SampledOnly
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, _: &layer::Context<'_, S>) -> bool {
        if !self.targets.would_enable(meta.target(), meta.level()) {
            return false;
        }
        if !meta.is_span() {
            return true;
        }
        // Inside a request (or work it started) the middleware has said; elsewhere (the
        // sweeper) the span is a root and the sampler decides.
        request_sampled().unwrap_or(true)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.targets.would_enable(meta.target(), meta.level()) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

/// Disables, for the whole subscriber, the spans made while serving an unsampled request that the
/// log layer does not take either. [`SampledOnly`] alone keeps them out of OpenTelemetry but not
/// out of the registry: a per-layer filter that says no still lets the registry allocate, enter
/// and close the span (tracing-subscriber 0.3.23 disables a span globally only when all 64
/// possible filter slots disabled it), which was most of what tracing cost an unsampled request.
/// A layer's own `enabled` is a global filter, and in a `Vec` the first `false` ends the check.
pub(super) struct UnsampledSpansOff {
    /// The most verbose level at which the log layer takes spans (`OFF`: it takes none).
    pub(super) log_spans: LevelFilter,
}

impl<S: Subscriber> Layer<S> for UnsampledSpansOff {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: layer::Context<'_, S>) -> bool {
        !meta.is_span() || *meta.level() <= self.log_spans || request_sampled() != Some(false)
    }
}
