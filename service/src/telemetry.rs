//! Logs and traces. The subscriber is composed here and nowhere else.
//!
//! Traces go through `tracing` spans, which the `tracing-opentelemetry` layer turns into
//! OpenTelemetry spans, which a batch processor exports over OTLP (gRPC by default, or
//! HTTP/protobuf). The request path never waits on the collector: a finished span is pushed
//! onto a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`) that a dedicated exporter thread drains every
//! `OTEL_BSP_SCHEDULE_DELAY`; when the queue is full the span is dropped on the spot, and an
//! export that fails (collector down, or slower than `OTEL_EXPORTER_OTLP_TIMEOUT`) loses its batch.
//! Both losses are counted in [`ExportStats`] and reported at shutdown.
//!
//! Without an endpoint the OpenTelemetry layer still runs, with no exporter: incoming
//! `traceparent`s are continued and responses and JSON log lines carry trace ids, so logs of a
//! load test can be joined with its requests; only `OTEL_SDK_DISABLED=true` removes the layer.

pub mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SamplingDecision, SamplingResult,
    SdkTracerProvider, ShouldSample, Span, SpanData, SpanExporter, SpanProcessor,
};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets, filter_fn};
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::layer::{self, Filter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogArgs, LogFormat, OtlpProtocol, SamplerKind, TelemetryArgs};

/// Share of root traces (requests that arrive without a `traceparent`) that are sampled: the
/// default of `OTEL_TRACES_SAMPLER_ARG`. Not 1.0: at saturation a sampled page view costs about
/// 1.6 times the CPU of an unsampled one (recording and exporting its spans), so every percent
/// sampled costs about a third of a percent of throughput (README, "Tracing overhead"), and the
/// goal is at most 5 % for all of tracing. The price is paid at the collector: Jaeger's tail
/// sampling (deploy/jaeger/config.yaml) can only keep a slow or failed trace the service
/// exported, so it sees this share of the slow root requests. Callers that send a sampled
/// `traceparent` are always followed (parent-based), so the load generator (`--trace-sample`, 1.0
/// by default) still gets every one of its requests traced; set the ratio to 1.0 when traffic
/// without a `traceparent` must be tail-sampled.
pub const DEFAULT_ROOT_SAMPLING_RATIO: f64 = 0.01;

/// Spans of this crate reach OpenTelemetry; those of dependencies (hyper, h2, tonic, sqlx...)
/// do not, which also keeps the exporter's own work out of the traces it exports.
const TRACED_TARGET: &str = "reservation_service";

/// Installs the global subscriber. Keep the returned guard alive; dropping it (or calling
/// [`Telemetry::shutdown`]) flushes the spans still queued.
pub fn init(log: &LogArgs, telemetry: &TelemetryArgs) -> anyhow::Result<Telemetry> {
    let tracing = Tracing::new(telemetry)?;
    subscriber(log, tracing.as_ref())?.try_init()?;
    Ok(Telemetry { tracing })
}

/// The subscriber of the service: logs filtered by `log.log_filter`, plus the OpenTelemetry
/// layer when `tracing` is given. Tests compose one around their own provider.
pub fn subscriber(
    log: &LogArgs,
    tracing: Option<&Tracing>,
) -> anyhow::Result<impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>> {
    subscriber_writing_to(log, tracing, std::io::stdout)
}

fn subscriber_writing_to<W>(
    log: &LogArgs,
    tracing: Option<&Tracing>,
    writer: W,
) -> anyhow::Result<impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&log.log_filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter {:?}: {e}", log.log_filter))?;
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::with_capacity(3);
    if let Some(tracing) = tracing {
        let log_spans = match log.log_format {
            LogFormat::Human => filter.max_level_hint().unwrap_or(LevelFilter::TRACE),
            LogFormat::Json => LevelFilter::OFF,
        };
        // Request spans are `info`: whether an unsampled request makes them at all.
        tracing
            .sampler
            .log_takes_spans
            .store(LevelFilter::INFO <= log_spans, Ordering::Relaxed);
        // First: `Vec`'s `enabled` stops at the first layer that says no.
        layers.push(UnsampledSpansOff { log_spans }.boxed());
    }
    layers.push(match log.log_format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_span_events(FmtSpan::NONE)
            .with_filter(filter)
            .boxed(),
        // JSON lines carry `trace_id`/`span_id` instead of the fields of every enclosing span, so
        // this layer takes no spans at all: formatting the fields of ten spans per request would
        // cost more than the request's own logging.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .event_format(WithTraceIds(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            ))
            .with_filter(filter.and(filter_fn(|meta| meta.is_event())))
            .boxed(),
    });
    if let Some(tracing) = tracing {
        layers.push(tracing.layer());
    }
    Ok(tracing_subscriber::registry().with(layers))
}

/// The tracer provider and its export counters. `None` from [`Tracing::new`] means OpenTelemetry
/// is disabled.
#[derive(Clone)]
pub struct Tracing {
    provider: SdkTracerProvider,
    stats: Arc<ExportStats>,
    sampler: RequestSampler,
}

/// The configured sampler, run by the HTTP middleware before any span exists: an unsampled
/// request then gets its ids and no span at all, and a sampled one a span that the provider
/// samples without deciding again ([`HonorRequestDecision`]).
#[derive(Debug, Clone)]
pub struct RequestSampler {
    sampler: Sampler,
    /// Whether the log layer of the subscriber composed around this [`Tracing`] takes `info`
    /// spans, so that an unsampled request must still make its spans (for human log lines).
    log_takes_spans: Arc<AtomicBool>,
}

impl RequestSampler {
    fn new(sampler: Sampler) -> Self {
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
struct HonorRequestDecision(Sampler);

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

impl Tracing {
    /// Builds the provider; with an endpoint, also the exporter (which for gRPC must happen
    /// inside a Tokio runtime: its channel's I/O runs there).
    pub fn new(args: &TelemetryArgs) -> anyhow::Result<Option<Self>> {
        if args.otel_sdk_disabled {
            return Ok(None);
        }
        let stats = Arc::new(ExportStats::default());
        let endpoint = args.otlp_endpoint.as_deref().filter(|e| !e.is_empty());
        let sampler = match endpoint {
            Some(_) => sampler(args.otel_traces_sampler, args.otel_traces_sampler_arg)?,
            // Nothing leaves the process, so recording spans would be pure cost: spans still get
            // ids (for logs and responses) but are never recorded.
            None => Sampler::AlwaysOff,
        };
        let mut builder = SdkTracerProvider::builder()
            .with_sampler(HonorRequestDecision(sampler.clone()))
            .with_resource(resource(args));
        if let Some(endpoint) = endpoint {
            let exporter = CountingExporter {
                inner: exporter(args.otlp_protocol, endpoint, args.otlp_timeout_ms)?,
                stats: stats.clone(),
            };
            let config = BatchConfigBuilder::default()
                .with_max_queue_size(args.otel_bsp_max_queue_size.max(1))
                .with_scheduled_delay(args.otel_bsp_schedule_delay_ms)
                .build();
            builder = builder.with_span_processor(CountingProcessor {
                inner: BatchSpanProcessor::builder(exporter)
                    .with_batch_config(config)
                    .build(),
                stats: stats.clone(),
            });
        }
        Ok(Some(Self {
            provider: builder.build(),
            stats,
            sampler: RequestSampler::new(sampler),
        }))
    }

    /// The sampler, for the HTTP middleware to decide before it makes a server span.
    pub fn request_sampler(&self) -> RequestSampler {
        self.sampler.clone()
    }

    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("reservation-service"))
            // Per-span thread, source location and busy/idle timings cost on every span and
            // say nothing the span tree does not.
            .with_threads(false)
            .with_location(false)
            .with_tracked_inactivity(false)
            // Parents come from the tracing span tree, not from OpenTelemetry's thread-local
            // context, which would otherwise be swapped on every poll of every instrumented future.
            .with_context_activation(false)
            .with_filter(SampledOnly {
                targets: Targets::new().with_target(TRACED_TARGET, Level::DEBUG),
            })
            .boxed()
    }
}

/// What the request a task serves knows of its trace. One task-local for both, so that a
/// request's future swaps one value in and out at each poll, not two.
#[derive(Debug, Clone, Copy)]
struct RequestTrace {
    /// Whether the trace is sampled: [`SampledOnly`] and [`UnsampledSpansOff`] decide for every
    /// span made inside the request with one task-local read, not with a walk of the registry.
    sampled: bool,
    /// Whether spans are made at all: yes in a sampled request, and in an unsampled one only when
    /// the log layer takes them. [`request_span!`] reads it before calling into the subscriber.
    spans: bool,
    /// The trace and span ids of an unsampled request, whose server span does not exist: the
    /// JSON log lines written while serving it take their ids from here.
    ids: Option<(opentelemetry::trace::TraceId, opentelemetry::trace::SpanId)>,
}

tokio::task_local! {
    /// Unset outside requests, and in a sampled request (whose spans carry everything).
    static REQUEST_TRACE: RequestTrace;
}

impl RequestSampler {
    /// Runs an unsampled request's handling: no spans are made inside it (unless the log layer
    /// takes them), and its log lines carry the ids of the server span it would have had.
    pub fn unsampled_request<F: Future>(
        &self,
        sc: &opentelemetry::trace::SpanContext,
        fut: F,
    ) -> impl Future<Output = F::Output> {
        REQUEST_TRACE.scope(self.unsampled_trace(sc), fut)
    }

    fn unsampled_trace(&self, sc: &opentelemetry::trace::SpanContext) -> RequestTrace {
        RequestTrace {
            sampled: false,
            spans: self.log_takes_spans.load(Ordering::Relaxed),
            ids: Some((sc.trace_id(), sc.span_id())),
        }
    }
}

/// Runs work that the current request spawns as the request runs: an unsampled request's
/// background writes make no spans either, and log with the request's ids.
pub fn as_current_request<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let trace = REQUEST_TRACE
        .try_with(|trace| *trace)
        .unwrap_or(RequestTrace {
            sampled: true,
            spans: true,
            ids: None,
        });
    REQUEST_TRACE.scope(trace, fut)
}

/// The sampling decision of the request this task serves, if it serves one.
pub fn request_sampled() -> Option<bool> {
    REQUEST_TRACE.try_with(|trace| trace.sampled).ok()
}

/// Samples `root`, a new root span made for work that `origin` started, as `origin` was. Left to
/// the provider, a sampled request's background work would be drawn again at the root ratio (1 %
/// by default) and mostly go missing from its trace's links. Call it before `root` is entered.
pub fn sample_as(root: &tracing::Span, origin: &tracing::Span) {
    if origin.context().span().span_context().is_sampled() {
        RequestSampler::build_sampled(|| drop(root.context()));
    }
}

/// Samples `root`, a new root span, whatever the root ratio: for the few roots a second that
/// explain what many requests waited for (the cache sweep). Call it before `root` is entered.
pub fn always_sample(root: &tracing::Span) {
    RequestSampler::build_sampled(|| drop(root.context()));
}

/// True inside an unsampled request whose spans no layer takes.
pub fn request_spans_off() -> bool {
    REQUEST_TRACE
        .try_with(|trace| !trace.spans)
        .unwrap_or(false)
}

/// `tracing::info_span!` for a span made while serving a request. Inside an unsampled request
/// whose spans the log layer does not take, it is `Span::none()` at the cost of one task-local
/// read. [`UnsampledSpansOff`] would disable the span as well, but only once the dispatcher has
/// gone through the layers; a page view makes about ten spans, and that walk, plus a field
/// lookup by name for each `record` on the disabled span, was the part of tracing's cost on an
/// unsampled request that sat in the `tracing` crates (README, "Tracing overhead").
macro_rules! request_span {
    ($($arg:tt)+) => {
        if $crate::telemetry::request_spans_off() {
            ::tracing::Span::none()
        } else {
            ::tracing::info_span!($($arg)+)
        }
    };
}
pub(crate) use request_span;

/// The OpenTelemetry layer's filter: this crate's spans and events, except spans made while
/// serving an unsampled request. tracing-opentelemetry would build them and the SDK would drop
/// them; not making them is what keeps tracing at a low sampling ratio cheap.
struct SampledOnly {
    targets: Targets,
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
struct UnsampledSpansOff {
    /// The most verbose level at which the log layer takes spans (`OFF`: it takes none).
    log_spans: LevelFilter,
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

/// Flushes and stops the exporter when dropped.
pub struct Telemetry {
    tracing: Option<Tracing>,
}

impl Telemetry {
    /// For [`crate::startup::Settings::request_sampler`]; `None` when OpenTelemetry is off.
    pub fn request_sampler(&self) -> Option<RequestSampler> {
        self.tracing.as_ref().map(Tracing::request_sampler)
    }

    /// Exports what is queued (bounded by the export timeout) and reports what was lost.
    pub fn shutdown(mut self) {
        self.shutdown_inner();
    }

    fn shutdown_inner(&mut self) {
        let Some(tracing) = self.tracing.take() else {
            return;
        };
        if let Err(error) = tracing.provider.shutdown() {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
        let stats = tracing.stats.snapshot();
        if stats.queue_dropped > 0 || stats.export_failed > 0 {
            tracing::warn!(
                spans_ended = stats.ended,
                spans_exported = stats.exported,
                spans_lost_in_failed_exports = stats.export_failed,
                spans_dropped_at_full_queue = stats.queue_dropped,
                "some spans were not exported"
            );
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

/// Counts of sampled spans, for "spans are dropped and counted". `ended - exported - failed` is
/// what sits in the queue or was dropped at a full queue; after a flush, only the latter.
#[derive(Debug, Default)]
pub struct ExportStats {
    ended: AtomicU64,
    exported: AtomicU64,
    export_failed: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSnapshot {
    pub ended: u64,
    pub exported: u64,
    pub export_failed: u64,
    /// Exact after a flush; before it, also counts spans still queued.
    pub queue_dropped: u64,
}

impl ExportStats {
    pub fn snapshot(&self) -> ExportSnapshot {
        let exported = self.exported.load(Ordering::Relaxed);
        let export_failed = self.export_failed.load(Ordering::Relaxed);
        let ended = self.ended.load(Ordering::Relaxed);
        ExportSnapshot {
            ended,
            exported,
            export_failed,
            queue_dropped: ended.saturating_sub(exported + export_failed),
        }
    }
}

/// The batch processor drops spans at a full queue without saying how many (until shutdown);
/// counting what goes in and what the exporter saw gives the number.
#[derive(Debug)]
struct CountingProcessor {
    inner: BatchSpanProcessor,
    stats: Arc<ExportStats>,
}

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.stats.ended.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
struct CountingExporter {
    inner: opentelemetry_otlp::SpanExporter,
    stats: Arc<ExportStats>,
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = match result {
            Ok(()) => &self.stats.exported,
            Err(_) => &self.stats.export_failed,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

fn exporter(
    protocol: OtlpProtocol,
    endpoint: &str,
    timeout: Duration,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let exporter = match protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .build(),
        // OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; the traces path goes after it.
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(http_traces_url(endpoint))
            .with_timeout(timeout)
            .build(),
    };
    exporter.with_context(|| format!("cannot build the OTLP exporter for {endpoint}"))
}

fn http_traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

fn sampler(kind: SamplerKind, arg: f64) -> anyhow::Result<Sampler> {
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

fn resource(args: &TelemetryArgs) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(
            args.otel_resource_attributes
                .as_deref()
                .map(parse_resource_attributes)
                .unwrap_or_default(),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_service_name(args.otel_service_name.clone())
        .build()
}

/// `key=value,key=value`, as in OTEL_RESOURCE_ATTRIBUTES; malformed pairs are skipped.
fn parse_resource_attributes(s: &str) -> Vec<KeyValue> {
    s.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| KeyValue::new(key.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The trace and span id of the span a log line belongs to, when there is one.
fn trace_ids(id: &tracing::span::Id) -> Option<(String, String)> {
    let cx = tracing::dispatcher::get_default(|dispatch| {
        tracing_opentelemetry::get_otel_context(id, dispatch)
    })?;
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// JSON log lines with top-level `trace_id` and `span_id`, so that a log search by trace id
/// finds every line a request wrote, whatever span it was written in.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // The innermost span whatever this layer's filter (which takes no spans).
        let current = ctx.current_span();
        let ids = current.id().and_then(trace_ids).or_else(|| {
            let (trace, span) = REQUEST_TRACE.try_with(|trace| trace.ids).ok()??;
            Some((trace.to_string(), span.to_string()))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
            ),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by the tests that install subscribers. Each new dispatcher makes `tracing` rebuild
    /// the callsites' cached interest, and a callsite first hit during another thread's rebuild
    /// can be left disabled: the process-wide subscriber's test then lost its span now and then.
    static SUBSCRIBERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn installing_subscribers() -> std::sync::MutexGuard<'static, ()> {
        SUBSCRIBERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

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
    fn spans_of_an_unsampled_request_are_not_made_unless_the_log_layer_takes_them() {
        let _serial = installing_subscribers();
        let tracing = Tracing::new(&TelemetryArgs::default())
            .unwrap()
            .expect("OpenTelemetry is on by default");
        let unsampled = opentelemetry::trace::SpanContext::new(
            TraceId::from(7_u128),
            opentelemetry::trace::SpanId::from(9_u64),
            opentelemetry::trace::TraceFlags::default(),
            false,
            Default::default(),
        );
        let made = |format: LogFormat, filter: &str, sampled: Option<bool>| {
            let log = LogArgs {
                log_filter: filter.into(),
                log_format: format,
            };
            let subscriber = subscriber_writing_to(&log, Some(&tracing), std::io::sink).unwrap();
            // As the middleware does, with the sampler of the composed subscriber.
            let sampler = tracing.request_sampler();
            tracing::subscriber::with_default(subscriber, || {
                // The subscriber's answer, and the request_span! shortcut's: they must agree.
                let make = || {
                    let by_subscriber = !tracing::info_span!("cache.get").is_disabled();
                    let by_shortcut = !request_span!("cache.get").is_disabled();
                    assert_eq!(
                        by_subscriber, by_shortcut,
                        "{format:?} {filter} {sampled:?}"
                    );
                    by_subscriber
                };
                match sampled {
                    Some(false) => {
                        REQUEST_TRACE.sync_scope(sampler.unsampled_trace(&unsampled), make)
                    }
                    Some(true) => REQUEST_TRACE.sync_scope(
                        RequestTrace {
                            sampled: true,
                            spans: true,
                            ids: None,
                        },
                        make,
                    ),
                    None => make(),
                }
            })
        };
        // Neither layer wants it: not made at all (the registry would otherwise make it).
        assert!(!made(LogFormat::Human, "warn", Some(false)));
        assert!(!made(LogFormat::Json, "info", Some(false)));
        // Human log lines show the spans around them at `info`.
        assert!(made(LogFormat::Human, "info", Some(false)));
        assert!(made(
            LogFormat::Human,
            "reservation_service=debug,warn",
            Some(false)
        ));
        // Sampled, or outside any request (the sweeper): OpenTelemetry takes it.
        assert!(made(LogFormat::Human, "warn", Some(true)));
        assert!(made(LogFormat::Json, "warn", None));
    }

    #[test]
    fn http_endpoint_gets_the_traces_path_once() {
        assert_eq!(http_traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(http_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            http_traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn resource_attributes_parse_and_skip_junk() {
        let kvs = parse_resource_attributes("deployment.environment=lab, team = x,junk,=y");
        let pairs: Vec<(String, String)> = kvs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("deployment.environment".into(), "lab".into()),
                ("team".into(), "x".into())
            ]
        );
    }

    /// The process-wide subscriber (as in the binary), writing JSON lines into a buffer.
    #[test]
    fn json_lines_inside_a_span_carry_trace_and_span_ids() {
        let _serial = installing_subscribers();
        #[derive(Clone, Default)]
        struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let log = LogArgs {
            log_filter: "reservation_service=info".into(),
            log_format: LogFormat::Json,
        };
        let tracing = Tracing::new(&TelemetryArgs::default())
            .unwrap()
            .expect("OpenTelemetry is on by default");
        let writer = buffer.clone();
        let subscriber = subscriber_writing_to(&log, Some(&tracing), move || writer.clone());
        if let Err(error) = subscriber.unwrap().try_init() {
            panic!("cannot install the process-wide subscriber: {error}");
        }
        tracing::info!("outside any span");
        let span = tracing::info_span!("request");
        span.in_scope(|| tracing::info!(answer = 42, "inside"));
        // An unsampled request enters no span: its lines take the ids the middleware set.
        let unsampled = opentelemetry::trace::SpanContext::new(
            opentelemetry::trace::TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            opentelemetry::trace::SpanId::from_hex("b7ad6b7169203331").unwrap(),
            opentelemetry::trace::TraceFlags::default(),
            true,
            Default::default(),
        );
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(
                tracing
                    .request_sampler()
                    .unsampled_request(&unsampled, async { tracing::info!("unsampled request") }),
            );
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[2]["trace_id"], "0af7651916cd43dd8448eb211c80319c",
            "{text}"
        );
        assert_eq!(lines[2]["span_id"], "b7ad6b7169203331", "{text}");
        assert!(lines[0].get("trace_id").is_none(), "{text}");
        let inside = &lines[1];
        assert_eq!(inside["message"], "inside");
        assert_eq!(inside["answer"], 42);
        assert_eq!(
            inside["trace_id"].as_str().map(str::len),
            Some(32),
            "{text}"
        );
        assert_eq!(inside["span_id"].as_str().map(str::len), Some(16), "{text}");
    }

    #[test]
    fn sampler_arg_out_of_range_is_refused() {
        assert!(sampler(SamplerKind::ParentbasedTraceidratio, 1.5).is_err());
        assert!(sampler(SamplerKind::ParentbasedTraceidratio, 0.1).is_ok());
    }
}
