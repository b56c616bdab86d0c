//! Traces: a real request through the real app, MariaDB and Redis, exported over OTLP/gRPC to a
//! receiver inside the test, and the collector-down case.
//!
//! Subscribers are per thread unless global, and tests share the process, so each test runs its
//! app on a thread of its own (a current-thread runtime) with its own subscriber as that thread's
//! default. That thread also drives the exporter's gRPC channel, so `force_flush` (which blocks
//! until the export is done) can be called from the test's thread without a deadlock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use reservation_service::config::{LogArgs, LogFormat, OtlpProtocol, TelemetryArgs};
use reservation_service::telemetry::{self, Tracing};
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;
use tokio::sync::oneshot;

use crate::helpers::{AppOptions, FaultProxy, TestApp, body, redis_addr, settings, spawn_app_with};

type Attributes = HashMap<String, AnyValue>;

/// Spans as the receiver got them, with their resource's attributes.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(Attributes, Span)>>>);

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource = attributes(
                resource_spans
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default(),
            );
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (resource.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Received {
    fn of_trace(&self, trace_id: &[u8]) -> Vec<Span> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.trace_id == trace_id)
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn named(&self, name: &str) -> Vec<Span> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn resources(&self) -> Vec<Attributes> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }
}

async fn start_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, received)
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
async fn start_http_receiver() -> (SocketAddr, Received) {
    use axum::body::Bytes;
    use prost::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                sink.export(tonic::Request::new(request)).await.unwrap();
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

fn attributes(kvs: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>) -> Attributes {
    kvs.into_iter()
        .filter_map(|kv| Some((kv.key, kv.value?.value?)))
        .collect()
}

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

/// Holds every connection it accepts open and silent until the test ends.
async fn start_silent_collector() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// A gRPC TraceService that answers every export `delay` late (and then successfully).
#[derive(Clone)]
struct LateReceiver {
    delay: Duration,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for LateReceiver {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(self.delay).await;
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_late_receiver(delay: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(LateReceiver {
        delay,
        calls: Arc::default(),
    });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
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
                let (endpoint, received) = match collector {
                    Collector::InProcess => {
                        let (addr, received) = start_receiver().await;
                        (format!("http://{addr}"), Some(received))
                    }
                    Collector::InProcessHttp => {
                        let (addr, received) = start_http_receiver().await;
                        (format!("http://{addr}"), Some(received))
                    }
                    Collector::Unreachable(endpoint) => (endpoint.to_owned(), None),
                    Collector::Stalled(Stall::Silent) => {
                        (format!("http://{}", start_silent_collector().await), None)
                    }
                    Collector::Stalled(Stall::AnswersAfter(delay)) => {
                        (format!("http://{}", start_late_receiver(delay).await), None)
                    }
                };
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

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends_from(span: &Span, ancestor: &Span, by_id: &HashMap<Vec<u8>, &Span>) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..32 {
        if parent == ancestor.span_id {
            return true;
        }
        match by_id.get(&parent) {
            Some(p) => parent = p.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[sqlx::test(migrations = "../migrations")]
async fn a_page_request_is_one_trace_from_http_to_cache_mysql_and_redis(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let id = app.create_activity(Some(7)).await;
    for _ in 0..3 {
        app.create_activity(None).await;
    }

    let response = app
        .client
        .get(app.url(&format!("/v1/activities/{id}/page?user_id=4242")))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .send()
        .await
        .unwrap();
    let traceparent = response
        .headers()
        .get("traceparent")
        .expect("a traceparent on the response")
        .to_str()
        .unwrap()
        .to_owned();
    let (status, page) = body(response).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["sources"]["activity"], "mysql", "a cold read: {page}");
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")) && traceparent.ends_with("-01"),
        "the response continues the caller's trace: {traceparent}"
    );

    // Let the sweeper (every 200 ms in tests) run at least once, then export.
    tokio::time::sleep(Duration::from_millis(450)).await;
    traced.flush().await;
    let received = traced.received.as_ref().unwrap();

    let spans = received.of_trace(&hex(TRACE_ID));
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();

    // The HTTP server span, child of the caller's span.
    let servers: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(servers.len(), 1, "one server span in {names:?}");
    let server = servers[0];
    assert_eq!(server.name, "GET /v1/activities/{id}/page");
    assert_eq!(server.parent_span_id, hex(CALLER_SPAN_ID));
    assert_eq!(
        traceparent,
        format!("00-{TRACE_ID}-{}-01", hex_string(&server.span_id)),
        "the response's traceparent names the server span"
    );
    assert_eq!(str_attr(server, "http.request.method"), "GET");
    assert_eq!(str_attr(server, "http.route"), "/v1/activities/{id}/page");
    assert_eq!(
        str_attr(server, "url.path"),
        format!("/v1/activities/{id}/page")
    );
    assert_eq!(int_attr(server, "http.response.status_code"), 200);
    assert!(attr(server, "error.type").is_none());

    // Cache: a miss on the page's own activity, then the fill.
    let cache_gets: Vec<&Span> = spans.iter().filter(|s| s.name == "cache.get").collect();
    assert!(!cache_gets.is_empty(), "cache.get spans in {names:?}");
    let miss = cache_gets
        .iter()
        .find(|s| attr(s, "cache.hit") == Some(AnyValue::BoolValue(false)))
        .expect("a cache miss");
    assert_eq!(str_attr(miss, "cache.mode"), "fixed");
    assert_eq!(str_attr(miss, "cache.operation"), "get");
    assert!(int_attr(miss, "cache.lock_wait_us") >= 0);
    // The related activities' reads: one span for the whole batch.
    let batches: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "cache.get_many")
        .collect();
    assert_eq!(batches.len(), 1, "one cache.get_many span in {names:?}");
    let batch = batches[0];
    assert_eq!(str_attr(batch, "cache.operation"), "get_many");
    assert_eq!(str_attr(batch, "cache.mode"), "fixed");
    let keys = int_attr(batch, "cache.keys");
    assert!(
        (0..=3).contains(&int_attr(batch, "cache.hits")) && int_attr(batch, "cache.hits") <= keys
    );
    assert!(int_attr(batch, "cache.lock_wait_us") >= 0);
    assert!(int_attr(batch, "cache.lock_wait_max_us") >= 0);
    let set = spans
        .iter()
        .find(|s| s.name == "cache.set")
        .unwrap_or_else(|| panic!("a cache.set span in {names:?}"));
    assert!(int_attr(set, "cache.nodes_walked") >= 0);
    assert!(int_attr(set, "cache.evicted") >= 0);

    // MySQL: client spans with the statement text and no bound value.
    let selects: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "SELECT activities")
        .collect();
    assert!(!selects.is_empty(), "MySQL spans in {names:?}");
    for span in spans
        .iter()
        .filter(|s| attr(s, "db.system.name") == Some(AnyValue::StringValue("mysql".into())))
    {
        assert_eq!(span.kind, SpanKind::Client as i32);
        let text = str_attr(span, "db.query.text");
        assert!(text.contains('?'), "placeholders in {text:?}");
        assert!(
            !text.contains(&id.to_string()) && !text.contains("4242"),
            "no parameter values in {text:?}"
        );
        assert!(!str_attr(span, "db.operation.name").is_empty());
        assert!(!str_attr(span, "db.collection.name").is_empty());
    }
    let by_pk = selects
        .iter()
        .find(|s| str_attr(s, "db.query.text").ends_with("FROM activities WHERE id = ?"))
        .expect("the activity read");
    assert_eq!(str_attr(by_pk, "db.operation.name"), "SELECT");
    assert_eq!(str_attr(by_pk, "db.collection.name"), "activities");
    assert!(
        spans.iter().any(|s| s.name == "SELECT reservations"),
        "the user's state came from MySQL too: {names:?}"
    );

    // Redis: client spans named after the command.
    let redis: Vec<&Span> = spans
        .iter()
        .filter(|s| attr(s, "db.system.name") == Some(AnyValue::StringValue("redis".into())))
        .collect();
    assert!(
        redis.iter().any(|s| s.name == "GET"),
        "redis GET in {names:?}"
    );
    assert!(
        redis.iter().all(
            |s| str_attr(s, "db.operation.name") == s.name && s.kind == SpanKind::Client as i32
        )
    );

    // The server span is the ancestor of every cache, MySQL and Redis span of the request.
    for span in cache_gets
        .iter()
        .copied()
        .chain([batch, set])
        .chain(selects.iter().copied())
        .chain(redis.iter().copied())
    {
        assert!(
            descends_from(span, server, &by_id),
            "{} under the server span",
            span.name
        );
    }

    // The sweep: a root span of its own.
    let sweeps = received.named("cache.sweep");
    let sweep = sweeps.first().expect("a cache.sweep span");
    assert!(sweep.parent_span_id.is_empty(), "the sweep is a root span");
    assert!(int_attr(sweep, "cache.nodes_walked") >= 0);
    assert!(int_attr(sweep, "cache.items_expired") >= 0);
    assert!(int_attr(sweep, "cache.pause_us") >= 0);

    // The resource names the service and carries OTEL_RESOURCE_ATTRIBUTES.
    let resource = received.resources().pop().unwrap();
    assert_eq!(
        resource.get("service.name"),
        Some(&AnyValue::StringValue("reservation-service".into()))
    );
    assert_eq!(
        resource.get("deployment.environment"),
        Some(&AnyValue::StringValue("test".into()))
    );
    assert_eq!(traced.tracing.stats().snapshot().export_failed, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn spans_also_export_over_otlp_http_protobuf(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcessHttp).await;
    let app = &traced.app;
    let trace_id = "7bf92f3577b34da6a3ce929d0e0e4739";
    let response = app
        .client
        .get(app.url("/v1/activities/424242/page?user_id=1"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(body(response).await.0, 404);
    traced.flush().await;
    let spans = traced.received.as_ref().unwrap().of_trace(&hex(trace_id));
    assert!(
        spans
            .iter()
            .any(|s| s.name == "GET /v1/activities/{id}/page"
                && s.parent_span_id == hex(CALLER_SPAN_ID)),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(spans.iter().any(|s| s.name == "SELECT activities"));
}

#[sqlx::test(migrations = "../migrations")]
async fn error_responses_mark_the_server_span(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let response = app
        .client
        .get(app.url("/v1/activities/424242/page?user_id=1"))
        .send()
        .await
        .unwrap();
    let trace_id = response
        .headers()
        .get("traceparent")
        .expect("a traceparent on error responses too")
        .to_str()
        .unwrap()[3..35]
        .to_owned();
    assert_eq!(body(response).await.0, 404);
    traced.flush().await;
    let spans = traced.received.as_ref().unwrap().of_trace(&hex(&trace_id));
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert!(server.parent_span_id.is_empty(), "no traceparent: a root");
    assert_eq!(int_attr(server, "http.response.status_code"), 404);
    assert_eq!(str_attr(server, "error.type"), "not_found");
    // A 4xx is the client's error, not the server's (HTTP semantic conventions).
    assert_ne!(
        server.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_request_cut_by_the_quota_says_so(pool: MySqlPool) {
    let proxy = FaultProxy::start(redis_addr()).await;
    let mut settings = settings();
    settings.request_quota = Duration::from_millis(100);
    let options = AppOptions {
        settings,
        redis_url: format!("redis://{}", proxy.addr),
        // Longer than the quota, so the quota is what cuts the request.
        redis_timeout: Duration::from_secs(2),
    };
    let traced = TracedApp::spawn_with(pool, Collector::InProcess, options, 1.0).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    proxy.set_latency(Duration::from_millis(400));
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let response = app
        .client
        .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN_ID}-01"))
        .send()
        .await
        .unwrap();
    let (status, error) = body(response).await;
    assert_eq!(status, 504, "{error}");
    proxy.set_latency(Duration::ZERO);
    traced.flush().await;
    let spans = traced.received.as_ref().unwrap().of_trace(&hex(trace_id));
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert_eq!(int_attr(server, "http.response.status_code"), 504);
    assert_eq!(str_attr(server, "error.type"), "quota_exceeded");
    assert_eq!(
        attr(server, "leaklab.quota_exceeded"),
        Some(AnyValue::BoolValue(true))
    );
    assert_eq!(
        server.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32),
        "a 5xx is an error span, which the collector's tail sampling keeps"
    );
    // The Redis call the quota cut short is in the trace, under the server span.
    assert!(
        spans.iter().any(|s| s.name == "GET"),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unsampled_caller_is_continued_but_not_exported(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let trace_id = "6bf92f3577b34da6a3ce929d0e0e4738";
    let response = app
        .client
        .get(app.url("/v1/activities/424242/page?user_id=1"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN_ID}-00"))
        .send()
        .await
        .unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")) && traceparent.ends_with("-00"),
        "the caller's trace, still unsampled: {traceparent}"
    );
    // A sampled request after it, to know the export has happened.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    traced.flush().await;
    let received = traced.received.as_ref().unwrap();
    assert!(
        !received.named("GET /healthz").is_empty(),
        "the sampled request was exported"
    );
    assert!(
        received.of_trace(&hex(trace_id)).is_empty(),
        "the parent-based sampler follows the caller's sampled flag"
    );
}

/// With OpenTelemetry on, the slowest requests' ids are the traces the responses name, for a
/// request that came without a `traceparent` too.
#[sqlx::test(migrations = "../migrations")]
async fn the_latency_window_names_the_trace_the_response_carries(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::InProcess).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    app.state.latencies().take();
    let response = app
        .client
        .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    let window = app.state.latencies().take();
    assert_eq!(window.requests, 1);
    assert_eq!(window.slowest_trace_ids, [&traceparent[3..35]]);
}

/// Work a request leaves running (here, filling Redis after a cold read) is a root span of its
/// own, linked to the request and sampled as the request was: not drawn again at the root ratio,
/// which is 0 here, so that nothing but the caller's flag can sample it.
#[sqlx::test(migrations = "../migrations")]
async fn background_work_is_sampled_as_the_request_that_started_it(pool: MySqlPool) {
    let traced =
        TracedApp::spawn_with(pool, Collector::InProcess, AppOptions::default(), 0.0).await;
    let app = &traced.app;
    let sampled_trace = "7bf92f3577b34da6a3ce929d0e0e4739";
    let unsampled_trace = "8bf92f3577b34da6a3ce929d0e0e473a";
    for (trace_id, flags) in [(sampled_trace, "01"), (unsampled_trace, "00")] {
        // A new activity each time: a cold read, whose summary is then copied to Redis.
        let id = app.create_activity(Some(7)).await;
        let response = app
            .client
            .get(app.url(&format!("/v1/activities/{id}/page?user_id=1")))
            .header(
                "traceparent",
                format!("00-{trace_id}-{CALLER_SPAN_ID}-{flags}"),
            )
            .send()
            .await
            .unwrap();
        let (status, page) = body(response).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["sources"]["activity"], "mysql", "a cold read: {page}");
    }
    // The copies to Redis finish after the responses.
    tokio::time::sleep(Duration::from_millis(300)).await;
    traced.flush().await;
    let received = traced.received.as_ref().unwrap();

    let server = received
        .of_trace(&hex(sampled_trace))
        .into_iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("the sampled request's server span");
    let fills = received.named("redis.fill_summary");
    assert!(
        !fills.is_empty(),
        "the sampled request's copy to Redis was exported"
    );
    for fill in &fills {
        assert!(fill.parent_span_id.is_empty(), "a root span of its own");
        assert_ne!(fill.trace_id, hex(sampled_trace), "in a trace of its own");
        let links: Vec<(&[u8], &[u8])> = fill
            .links
            .iter()
            .map(|l| (l.trace_id.as_slice(), l.span_id.as_slice()))
            .collect();
        assert_eq!(
            links,
            [(hex(sampled_trace).as_slice(), server.span_id.as_slice())],
            "linked to the request that started it, and to no other"
        );
    }
    assert!(
        received.of_trace(&hex(unsampled_trace)).is_empty(),
        "nothing of the unsampled request"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn requests_stay_fast_when_the_collector_is_unreachable(pool: MySqlPool) {
    let traced = TracedApp::spawn(pool, Collector::Unreachable("http://127.0.0.1:1")).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    let started = Instant::now();
    for user in 0..30 {
        let (status, page) = app
            .get(&format!("/v1/activities/{id}/page?user_id={user}"))
            .await;
        assert_eq!(status, 200, "{page}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "30 page views took {elapsed:?} with the collector down"
    );
    // The export fails fast and the spans are counted as lost, not retried forever.
    let flush_started = Instant::now();
    traced.flush().await;
    assert!(flush_started.elapsed() < Duration::from_secs(5));
    let stats = traced.tracing.stats().snapshot();
    assert_eq!(stats.exported, 0);
    assert!(stats.export_failed > 0, "{stats:?}");
}

/// A collector that stalls must cost requests nothing: spans are dropped at the full queue or
/// lost with their timed-out batch, and counted, while every request is served on time.
async fn requests_stay_fast_and_spans_are_counted(pool: MySqlPool, stall: Stall) {
    let traced = TracedApp::spawn(pool, Collector::Stalled(stall)).await;
    let app = &traced.app;
    let id = app.create_activity(None).await;
    for _ in 0..3 {
        app.create_activity(None).await;
    }
    // 400 sampled page views, 8 at a time: several hundred spans per second against a queue of
    // 64 that nothing drains.
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..400_u64)
        .map(|user| {
            let app = &traced.app;
            async move {
                let sent = Instant::now();
                let response = app
                    .client
                    .get(app.url(&format!("/v1/activities/{id}/page?user_id={user}")))
                    .header(
                        "traceparent",
                        format!("00-{:032x}-{CALLER_SPAN_ID}-01", 0xabc0_0000_u64 + user),
                    )
                    .send()
                    .await
                    .expect("the request is answered");
                let (status, page) = body(response).await;
                assert_eq!(status, 200, "{page}");
                sent.elapsed()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let slowest = latencies.iter().max().unwrap();
    // A request that waited for the collector would wait for the export timeout (2 s) at least.
    assert!(
        *slowest < Duration::from_millis(1500),
        "the slowest of 400 page views took {slowest:?} with a stalled collector"
    );
    assert!(
        elapsed > Duration::from_millis(300),
        "{elapsed:?}: the load outlasts an export"
    );
    let stats = traced.tracing.stats().snapshot();
    assert!(
        stats.ended >= 400,
        "every sampled span is counted: {stats:?}"
    );
    assert_eq!(stats.exported, 0, "{stats:?}");
    assert!(
        stats.queue_dropped > stats.ended / 2,
        "spans dropped at the full queue are counted: {stats:?}"
    );
    // Flushing is bounded too (by the export timeout), and the stalled exports count as lost.
    let flush_started = Instant::now();
    traced.flush().await;
    assert!(flush_started.elapsed() < Duration::from_secs(8));
    let stats = traced.tracing.stats().snapshot();
    assert_eq!(stats.exported, 0, "{stats:?}");
    assert!(stats.export_failed > 0, "{stats:?}");
    assert!(stats.queue_dropped > stats.ended / 2, "{stats:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn requests_stay_fast_when_the_collector_accepts_but_never_answers(pool: MySqlPool) {
    requests_stay_fast_and_spans_are_counted(pool, Stall::Silent).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn requests_stay_fast_when_the_collector_answers_late(pool: MySqlPool) {
    requests_stay_fast_and_spans_are_counted(pool, Stall::AnswersAfter(Duration::from_secs(30)))
        .await;
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
