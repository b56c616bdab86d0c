//! Traces: a real request through the real app, MariaDB and Redis, exported over OTLP to a
//! receiver inside the test (`leaklab-otlp-receiver`), and the collector-down cases. This file is
//! the harness the tests share; the tests are in the modules, by subject.
//!
//! Subscribers are per thread unless global, and tests share the process, so each test runs its
//! app on a thread of its own (a current-thread runtime) with its own subscriber as that thread's
//! default. That thread also drives the exporter's gRPC channel, so `force_flush` (which blocks
//! until the export is done) can be called from the test's thread without a deadlock.

mod collector_down;
mod end_to_end;
mod errors;
mod sampling;

use std::sync::OnceLock;
use std::time::Duration;

use leaklab_otlp_receiver::proto::tonic::common::v1::any_value::Value as AnyValue;
use leaklab_otlp_receiver::proto::tonic::trace::v1::Span;
use leaklab_otlp_receiver::{Answer, Options, Protocol, Received, Receiver};
use reservation_service::config::{LogArgs, LogFormat, OtlpProtocol, TelemetryArgs};
use reservation_service::telemetry::{self, Tracing};
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;
use tokio::sync::oneshot;

use crate::helpers::{AppOptions, TestApp, spawn_app_with};

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn str_attr(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => s,
        other => panic!("span {:?}: {key} is {other:?}, not a string", span.name),
    }
}

fn int_attr(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(AnyValue::IntValue(i)) => i,
        other => panic!("span {:?}: {key} is {other:?}, not an integer", span.name),
    }
}

/// The app on its own thread, traced by its own subscriber.
struct TracedApp {
    app: TestApp,
    tracing: Tracing,
    received: Option<Received>,
    _stop: oneshot::Sender<()>,
}

#[derive(Clone, Copy)]
enum Collector {
    /// A receiver inside the test.
    InProcess,
    /// The same over OTLP/HTTP with protobuf bodies.
    InProcessHttp,
    /// An endpoint nobody listens on.
    Unreachable(&'static str),
    /// A collector that is there but does not keep up: see [`Stall`].
    Stalled(Stall),
}

#[derive(Clone, Copy)]
enum Stall {
    /// Accepts TCP connections and never reads or writes a byte (a hung process, a full
    /// backlog behind a proxy): the HTTP/2 handshake never completes.
    Silent,
    /// A gRPC collector that takes every export and answers after this long.
    AnswersAfter(Duration),
}

impl Collector {
    /// Starts the receiver inside the test, if any; and the endpoint to export to.
    async fn start(self) -> (String, Option<Receiver>) {
        let options = match self {
            Collector::Unreachable(endpoint) => return (endpoint.to_owned(), None),
            Collector::InProcess => Options::default(),
            Collector::InProcessHttp => Options {
                protocol: Protocol::HttpProtobuf,
                ..Options::default()
            },
            Collector::Stalled(Stall::Silent) => Options {
                answer: Answer::Never,
                ..Options::default()
            },
            Collector::Stalled(Stall::AnswersAfter(delay)) => Options {
                answer: Answer::After(delay),
                ..Options::default()
            },
        };
        let receiver = Receiver::start(options).await.unwrap();
        (receiver.endpoint(), Some(receiver))
    }
}

/// tracing-core caches, per callsite, whether any subscriber wants it. While exactly one scoped
/// subscriber exists it asks only the *calling thread's* subscriber, so a callsite first hit by a
/// test without one (most tests here) is cached as "never" for everyone, this test's app
/// included. A second, idle subscriber that lives as long as the process makes tracing-core ask
/// every subscriber instead.
fn register_idle_subscriber() {
    static IDLE: OnceLock<::tracing::Dispatch> = OnceLock::new();
    IDLE.get_or_init(|| ::tracing::Dispatch::new(tracing_subscriber::registry()));
}

impl TracedApp {
    async fn spawn(pool: MySqlPool, collector: Collector) -> Self {
        Self::spawn_with(pool, collector, AppOptions::default(), 1.0).await
    }

    /// `root_ratio`: the share of root traces sampled (`OTEL_TRACES_SAMPLER_ARG`).
    async fn spawn_with(
        pool: MySqlPool,
        collector: Collector,
        app_options: AppOptions,
        root_ratio: f64,
    ) -> Self {
        register_idle_subscriber();
        let options = (*pool.connect_options()).clone();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // The receiver stays on this thread until the test ends: dropped, it stops.
                let (endpoint, receiver) = collector.start().await;
                let received = receiver.as_ref().map(|r| r.received().clone());
                let otlp_protocol = match collector {
                    Collector::InProcessHttp => OtlpProtocol::HttpProtobuf,
                    _ => OtlpProtocol::Grpc,
                };
                let mut args = TelemetryArgs {
                    otlp_endpoint: Some(endpoint),
                    otlp_protocol,
                    otlp_timeout_ms: Duration::from_secs(1),
                    otel_resource_attributes: Some("deployment.environment=test".into()),
                    // 1.0 in most tests, whatever the service's default ratio: they look for
                    // spans of requests sent without a traceparent too.
                    otel_traces_sampler_arg: root_ratio,
                    ..TelemetryArgs::default()
                };
                if let Collector::Stalled(_) = collector {
                    // A small queue, drained often: it fills while the collector stalls.
                    args.otel_bsp_max_queue_size = 64;
                    args.otel_bsp_schedule_delay_ms = Duration::from_millis(100);
                    args.otlp_timeout_ms = Duration::from_secs(2);
                }
                let tracing = Tracing::new(&args).unwrap().expect("tracing enabled");
                let log = LogArgs {
                    log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into()),
                    log_format: LogFormat::Json,
                };
                let subscriber = telemetry::subscriber(&log, Some(&tracing)).unwrap();
                let _default = ::tracing::subscriber::set_default(subscriber);
                // A pool of this runtime: connections belong to the runtime that opened them.
                let pool = MySqlPoolOptions::new().connect_lazy_with(options);
                // As main does: the middleware samples with the provider's sampler.
                let mut app_options = app_options;
                app_options.settings.request_sampler = Some(tracing.request_sampler());
                let app = spawn_app_with(pool, app_options).await;
                let _ = ready_tx.send((app, tracing, received));
                let _ = stop_rx.await;
                drop(receiver);
            });
        });
        let (app, tracing, received) = ready_rx.await.expect("app thread started");
        // Callsites cache whether any subscriber wants them. One first hit by another test while
        // this subscriber was being registered can keep a stale "no"; a rebuild now, with this
        // subscriber registered, settles every callsite seen so far.
        ::tracing::callsite::rebuild_interest_cache();
        Self {
            app,
            tracing,
            received,
            _stop: stop_tx,
        }
    }

    /// Exports every span ended so far; blocks until the exporter is done.
    async fn flush(&self) {
        let provider = self.tracing.provider().clone();
        let _ = tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .unwrap();
    }
}

impl Drop for TracedApp {
    /// Shuts the exporter down from this thread while the app's thread still drives its channel;
    /// left to the app's thread, the last export would wait on the runtime it blocks.
    fn drop(&mut self) {
        let _ = self.tracing.provider().shutdown();
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
