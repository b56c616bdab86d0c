//! The sampling decision: taken once per request by the HTTP middleware ([`RequestSampler`]),
//! and kept by the provider's sampler ([`HonorRequestDecision`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

use crate::config::SamplerKind;

/// The configured sampler, run by the HTTP middleware before any span exists: an unsampled
/// request then gets its ids and no span at all, and a sampled one a span that the provider
/// samples without deciding again ([`HonorRequestDecision`]).
#[derive(Debug, Clone)]
pub struct RequestSampler {
    pub(super) sampler: Sampler,
    /// Whether the log layer of the subscriber composed around this
    /// [`Tracing`](super::provider::Tracing) takes `info` spans, so that an unsampled request
    /// must still make its spans (for human log lines).
    pub(super) log_takes_spans: Arc<AtomicBool>,
}

impl RequestSampler {
    pub(super) fn new(sampler: Sampler) -> Self {
        Self {
            sampler,
            log_takes_spans: Arc::default(),
        }
    }

    /// Whether a server span with `parent` (the caller's context, if any) and `trace_id` (the
    /// parent's, or a new one for a root) is sampled.
    pub fn sampled(&self, parent: Option<&Context>, trace_id: TraceId) -> bool {
        let result = self.sampler.should_sample(
            parent,
            trace_id,
            "http.server.request",
            &SpanKind::Server,
            &[],
            &[],
        );
        matches!(result.decision, SamplingDecision::RecordAndSample)
    }

    /// Builds the span that [`Self::sampled`] chose, through `build` (which makes the
    /// OpenTelemetry span), without the provider's sampler deciding again.
    pub fn build_sampled<T>(build: impl FnOnce() -> T) -> T {
        DECIDED.set(true);
        let built = build();
        DECIDED.set(false);
        built
    }
}

thread_local! {
    /// Set while the middleware builds a span it has already sampled.
    static DECIDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The provider's sampler: the configured one, except for a server span the middleware sampled
/// already. Deciding twice would sample a root with the ratio squared (a new trace id each time).
#[derive(Debug, Clone)]
pub(super) struct HonorRequestDecision(pub(super) Sampler);

impl ShouldSample for HonorRequestDecision {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if DECIDED.get() {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: parent_context
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            };
        }
        self.0
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

pub(super) fn sampler(kind: SamplerKind, arg: f64) -> anyhow::Result<Sampler> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&arg),
        "OTEL_TRACES_SAMPLER_ARG must be within [0, 1], not {arg}"
    );
    let ratio = || Sampler::TraceIdRatioBased(arg);
    Ok(match kind {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::Traceidratio => ratio(),
        SamplerKind::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentbasedTraceidratio => Sampler::ParentBased(Box::new(ratio())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_keeps_the_middlewares_decision_and_decides_alone_otherwise() {
        let never = HonorRequestDecision(Sampler::AlwaysOff);
        let sample = |s: &HonorRequestDecision| {
            s.should_sample(
                None,
                TraceId::from(7_u128),
                "x",
                &SpanKind::Server,
                &[],
                &[],
            )
            .decision
        };
        assert_eq!(sample(&never), SamplingDecision::Drop);
        let decided = RequestSampler::build_sampled(|| sample(&never));
        assert_eq!(decided, SamplingDecision::RecordAndSample);
        // The flag does not outlive the build.
        assert_eq!(sample(&never), SamplingDecision::Drop);

        let ratio = RequestSampler::new(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(0.5),
        )));
        let sampled = (0..1000_u128)
            .filter(|i| {
                ratio.sampled(
                    None,
                    TraceId::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)),
                )
            })
            .count();
        assert!((350..650).contains(&sampled), "{sampled} of 1000 at 0.5");
    }

    #[test]
    fn sampler_arg_out_of_range_is_refused() {
        assert!(sampler(SamplerKind::ParentbasedTraceidratio, 1.5).is_err());
        assert!(sampler(SamplerKind::ParentbasedTraceidratio, 0.1).is_ok());
    }
}
