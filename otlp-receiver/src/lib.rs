//! An OTLP trace receiver that records what it got.
//!
//! The service's tests need a collector that keeps every span it receives, with its resource's
//! attributes, to assert on them; and collectors that misbehave (accept connections and never
//! answer, answer every export late) to show that requests never wait on tracing. The compose
//! stand-in for Jaeger (`service/examples/span_report.rs`) and the benchmarks' counting sink
//! (`service/examples/otlp_sink.rs`) need the same receiver as a process. This is that one
//! receiver, instead of a copy in each: OTLP/gRPC, or OTLP/HTTP with protobuf bodies
//! (`POST /v1/traces`), on the caller's listener or on an ephemeral port of 127.0.0.1.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use leaklab_otlp_receiver::{Options, Receiver};
//!
//! let receiver = Receiver::start(Options::default()).await?;
//! // ... point an exporter at `receiver.endpoint()` and flush it, then:
//! let servers = receiver.received().named("GET /healthz");
//! # Ok(()) }
//! ```
//!
//! The receiver runs on the Tokio runtime it was started on, until [`Receiver::stop`], until the
//! [`Receiver`] is dropped, or until that runtime ends.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The OTLP types ([`proto::tonic::trace::v1::Span`], ...), at the version the receiver speaks.
pub use opentelemetry_proto as proto;

/// A resource's attributes, by key (attributes without a value are left out).
pub type Attributes = HashMap<String, AnyValue>;

/// The wire protocol a receiver serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`), the exporters' default, port 4317 by convention.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies: `POST /v1/traces`, port 4318 by convention.
    HttpProtobuf,
}

/// How a receiver answers exports: well, or as a collector in trouble does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Answer {
    /// Records the export and answers it at once.
    #[default]
    AtOnce,
    /// Records the export and answers it, successfully, this long after.
    After(Duration),
    /// Accepts TCP connections and never reads or writes a byte (a hung process, a full backlog
    /// behind a proxy): not even the HTTP/2 handshake completes, and nothing is recorded.
    Never,
}

/// How to run a receiver. `Options::default()`: gRPC, answers at once, keeps every span.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub protocol: Protocol,
    pub answer: Answer,
    /// Whether to keep the spans received, or only count them (a sink for load tests, whose
    /// memory must not grow with the run).
    pub keep_spans: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            protocol: Protocol::default(),
            answer: Answer::default(),
            keep_spans: true,
        }
    }
}

/// A span as received, with its resource's attributes (shared by the spans of one resource).
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub resource: Arc<Attributes>,
    pub span: Span,
}

/// What a receiver got. Clones share it, so it can be read while the receiver runs.
#[derive(Clone)]
pub struct Received(Arc<Shared>);

struct Shared {
    keep_spans: bool,
    spans: Mutex<Vec<ReceivedSpan>>,
    span_count: AtomicU64,
    exports: AtomicU64,
}

impl Received {
    fn new(keep_spans: bool) -> Self {
        Self(Arc::new(Shared {
            keep_spans,
            spans: Mutex::default(),
            span_count: AtomicU64::new(0),
            exports: AtomicU64::new(0),
        }))
    }

    fn record(&self, request: ExportTraceServiceRequest) {
        self.0.exports.fetch_add(1, Ordering::Relaxed);
        let mut kept = Vec::new();
        let mut count = 0;
        for resource_spans in request.resource_spans {
            let resource = Arc::new(attributes(
                resource_spans
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default(),
            ));
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                count += 1;
                if self.0.keep_spans {
                    kept.push(ReceivedSpan {
                        resource: Arc::clone(&resource),
                        span,
                    });
                }
            }
        }
        self.lock().extend(kept);
        self.0.span_count.fetch_add(count, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<ReceivedSpan>> {
        // A panic while holding the lock leaves the list whole: keep reading it.
        self.0
            .spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every span kept so far, in the order received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().clone()
    }

    /// Every span kept so far, in the order received; the receiver keeps none of them.
    pub fn take(&self) -> Vec<ReceivedSpan> {
        std::mem::take(&mut *self.lock())
    }

    /// The spans of one trace (`trace_id`: its 16 bytes).
    pub fn of_trace(&self, trace_id: &[u8]) -> Vec<Span> {
        self.matching(|s| s.trace_id == trace_id)
    }

    /// The spans of this name.
    pub fn named(&self, name: &str) -> Vec<Span> {
        self.matching(|s| s.name == name)
    }

    fn matching(&self, keep: impl Fn(&Span) -> bool) -> Vec<Span> {
        self.lock()
            .iter()
            .filter(|r| keep(&r.span))
            .map(|r| r.span.clone())
            .collect()
    }

    /// Each kept span's resource attributes, in the order the spans were received.
    pub fn resources(&self) -> Vec<Attributes> {
        self.lock().iter().map(|r| (*r.resource).clone()).collect()
    }

    /// Spans received so far, kept or not.
    pub fn span_count(&self) -> u64 {
        self.0.span_count.load(Ordering::Relaxed)
    }

    /// Export requests received so far (answered or still waiting for their answer).
    pub fn exports(&self) -> u64 {
        self.0.exports.load(Ordering::Relaxed)
    }
}

fn attributes(kvs: Vec<KeyValue>) -> Attributes {
    kvs.into_iter()
        .filter_map(|kv| Some((kv.key, kv.value?.value?)))
        .collect()
}

/// The receiving end both protocols share.
#[derive(Clone)]
struct Collector {
    received: Received,
    delay: Option<Duration>,
}

impl Collector {
    async fn export(&self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        self.received.record(request);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        ExportTraceServiceResponse::default()
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            Collector::export(self, request.into_inner()).await,
        ))
    }
}

async fn export_http(State(collector): State<Collector>, body: Bytes) -> Response {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (
            StatusCode::BAD_REQUEST,
            "the body is not a protobuf ExportTraceServiceRequest",
        )
            .into_response();
    };
    let response = collector.export(request).await;
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        response.encode_to_vec(),
    )
        .into_response()
}

/// A running receiver. Dropping it stops it, as [`Receiver::stop`] does but without waiting.
pub struct Receiver {
    addr: SocketAddr,
    received: Received,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Receiver {
    /// Starts a receiver on an ephemeral port of 127.0.0.1.
    pub async fn start(options: Options) -> io::Result<Self> {
        Self::serve(TcpListener::bind("127.0.0.1:0").await?, options)
    }

    /// Starts a receiver on `listener`, on the current Tokio runtime.
    pub fn serve(listener: TcpListener, options: Options) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let received = Received::new(options.keep_spans);
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            // A dropped handle stops the receiver too.
            let _ = stopped.await;
        };
        let delay = match options.answer {
            Answer::AtOnce => None,
            Answer::After(delay) => Some(delay),
            Answer::Never => {
                let task = tokio::spawn(hold_silently(listener, stopped));
                return Ok(Self {
                    addr,
                    received,
                    stop: Some(stop),
                    task,
                });
            }
        };
        let collector = Collector {
            received: received.clone(),
            delay,
        };
        let task = match options.protocol {
            Protocol::Grpc => tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(collector))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        stopped,
                    )
                    .await
                    .map_err(io::Error::other)
            }),
            Protocol::HttpProtobuf => {
                let app = axum::Router::new()
                    .route("/v1/traces", axum::routing::post(export_http))
                    .with_state(collector);
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                })
            }
        };
        Ok(Self {
            addr,
            received,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: an exporter's endpoint (OTLP/HTTP exporters append `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it has received so far; a clone keeps receiving.
    pub fn received(&self) -> &Received {
        &self.received
    }

    /// Stops accepting connections, waits for the exports under way to be answered, and
    /// returns what was received.
    pub async fn stop(mut self) -> io::Result<Received> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        joined((&mut self.task).await)?;
        Ok(self.received.clone())
    }

    /// Runs until `signal` resolves, then stops as [`Receiver::stop`] does; returns early, with
    /// the error, if the server fails first.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> io::Result<Received> {
        let ended = tokio::select! {
            ended = &mut self.task => Some(ended),
            () = signal => None,
        };
        match ended {
            None => self.stop().await,
            Some(ended) => {
                joined(ended)?;
                Ok(self.received.clone())
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn joined(ended: Result<io::Result<()>, tokio::task::JoinError>) -> io::Result<()> {
    ended.map_err(io::Error::other)?
}

/// [`Answer::Never`]: holds every connection it accepts open and silent until stopped.
async fn hold_silently(listener: TcpListener, stopped: impl Future<Output = ()>) -> io::Result<()> {
    tokio::pin!(stopped);
    let mut held = Vec::new();
    loop {
        tokio::select! {
            () = &mut stopped => return Ok(()),
            accepted = listener.accept() => held.push(accepted?.0),
        }
    }
}
