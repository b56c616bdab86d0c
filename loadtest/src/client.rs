//! Request execution and classification.
//!
//! Each worker owns one HTTP/1.1 keep-alive connection and takes jobs from the
//! scheduler's queue, so `--connections` bounds both sockets and requests in
//! flight. A job's deadline is its *intended* time plus the quota: time spent
//! queued behind busy connections counts against the server, exactly as it
//! would for a user whose request waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::trace::{TraceCtx, parse_trace_id};
use crate::workload::Op;

/// How a request ended, per the incident's service level definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Any non-5xx answer (4xx included) complete within the quota.
    Good,
    /// No complete answer within the quota (including never getting a connection).
    Timeout,
    /// A 5xx answer within the quota.
    ServerError,
    /// Connect failure, reset, or malformed response.
    Connection,
    /// Never sent because the generator itself fell behind by more than the
    /// quota; excluded from availability and reported as a generator fault.
    Dropped,
}

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Intended send time as an offset from the run start.
    pub intended: Duration,
    /// Response-complete (or give-up) time minus intended send time.
    pub latency: Duration,
    /// When a connection actually took the request; `None` if it never did.
    pub sent_at: Option<Duration>,
    pub class: Class,
    /// HTTP status, 0 when there was no answer.
    pub status: u16,
    /// The scheduler dispatched it later than `--lag-threshold`.
    pub late: bool,
    pub op: Op,
    pub trace: TraceCtx,
}

/// A scheduled request on its way to a worker.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub intended: Instant,
    pub op: Op,
    pub late: bool,
}

/// A plain-HTTP target resolved once at start-up.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    host: HeaderValue,
    base_path: String,
}

impl Target {
    pub async fn resolve(url: &str) -> Result<Target> {
        let bad = |reason: &str| Error::Target {
            target: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: hyper::Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(&format!(
                    "scheme {other} not supported (plain http only)"
                )));
            }
            None => return Err(bad("missing scheme, e.g. http://127.0.0.1:8080")),
        }
        let auth = uri.authority().ok_or_else(|| bad("missing host"))?;
        let port = auth.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((auth.host(), port))
            .await
            .map_err(|e| bad(&format!("cannot resolve host: {e}")))?
            .collect();
        // `localhost` often resolves to ::1 first while lab services listen on
        // 127.0.0.1: prefer IPv4 when the name has both.
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| bad("host resolves to no address"))?;
        let host = HeaderValue::from_str(auth.as_str()).map_err(|_| bad("invalid host"))?;
        Ok(Target {
            url: url.trim_end_matches('/').to_string(),
            addr,
            host,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    async fn connect<B>(&self) -> std::result::Result<SendRequest<B>, ExchangeError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = TcpStream::connect(self.addr).await?;
        // Requests are small and latency is the measurement: never batch them.
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

pub struct ClientCtx {
    pub target: Target,
    pub quota: Duration,
    pub trace_sample: f64,
    pub start: Instant,
}

/// One connection's worth of work: runs until the job queue closes.
pub async fn worker(
    ctx: Arc<ClientCtx>,
    jobs: flume::Receiver<Job>,
    results: mpsc::Sender<Outcome>,
) {
    let mut rng = SmallRng::from_os_rng();
    let mut conn: Option<SendRequest<Empty<Bytes>>> = None;
    while let Ok(job) = jobs.recv_async().await {
        let trace = TraceCtx::random(&mut rng, ctx.trace_sample);
        let deadline = job.intended + ctx.quota;
        let picked = Instant::now();
        let (class, status, sent_at, trace) = if picked >= deadline {
            (Class::Timeout, 0, None, trace)
        } else {
            let sent_at = Some(picked - ctx.start);
            match tokio::time::timeout_at(deadline, exchange(&mut conn, &ctx, &job, &trace)).await {
                Ok(Ok((status, seen))) => {
                    let trace = TraceCtx {
                        trace_id: seen.unwrap_or(trace.trace_id),
                        ..trace
                    };
                    let class = if status >= 500 {
                        Class::ServerError
                    } else {
                        Class::Good
                    };
                    (class, status, sent_at, trace)
                }
                Ok(Err(_)) => {
                    conn = None;
                    (Class::Connection, 0, sent_at, trace)
                }
                Err(_) => {
                    // The exchange was cancelled mid-flight: an HTTP/1 connection
                    // in that state cannot carry another request.
                    conn = None;
                    (Class::Timeout, 0, sent_at, trace)
                }
            }
        };
        let outcome = Outcome {
            intended: job.intended - ctx.start,
            latency: Instant::now().saturating_duration_since(job.intended),
            sent_at,
            class,
            status,
            late: job.late,
            op: job.op,
            trace,
        };
        if results.send(outcome).await.is_err() {
            break;
        }
    }
}

async fn exchange(
    conn: &mut Option<SendRequest<Empty<Bytes>>>,
    ctx: &ClientCtx,
    job: &Job,
    trace: &TraceCtx,
) -> std::result::Result<(u16, Option<u128>), ExchangeError> {
    let reusable = match conn.as_mut() {
        Some(s) => s.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        // A server closing an idle keep-alive connection is not a failure of
        // this request: reconnect instead of counting it.
        *conn = Some(ctx.target.connect().await?);
    }
    let sender = conn.as_mut().expect("connection set above");
    sender.ready().await?;
    let uri = format!("{}{}", ctx.target.base_path, job.op.path());
    let req = hyper::Request::builder()
        .method(job.op.kind.method())
        .uri(uri)
        .header(HOST, ctx.target.host.clone())
        .header("traceparent", trace.traceparent())
        .body(Empty::new())
        .expect("method, path and headers are valid by construction");
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers();
    let seen = headers
        .get("traceparent")
        .or_else(|| headers.get("x-trace-id"))
        .and_then(|v| parse_trace_id(v.as_bytes()));
    // Latency is to the *complete* response, so drain the body.
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok((status, seen))
}

/// A one-off request on a fresh connection (admin calls), with a timeout.
pub async fn one_off(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Bytes>,
    timeout: Duration,
) -> std::result::Result<(u16, Bytes), String> {
    let fut = async {
        let mut sender: SendRequest<Full<Bytes>> =
            target.connect().await.map_err(|e| e.to_string())?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", target.base_path, path))
            .header(HOST, target.host.clone());
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}
