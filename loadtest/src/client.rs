//! Request execution and classification.
//!
//! Each worker owns one HTTP/1.1 keep-alive connection ([`crate::http1`]) and takes jobs from the
//! scheduler's queue, so `--connections` bounds both sockets and requests in
//! flight. A job's deadline is its *intended* time plus the quota: time spent
//! queued behind busy connections counts against the server, exactly as it
//! would for a user whose request waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::http1::{Http1Conn, Http1Error, Response, write_request};
use crate::model::{OpKind, TraceCtx};
use crate::verify::record::{self, Recorder};

use crate::model::{Class, Job, Outcome};

/// A plain-HTTP target resolved once at start-up.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    host: HeaderValue,
    host_str: String,
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
            host_str: auth.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    async fn connect<B>(&self) -> std::result::Result<SendRequest<B>, String>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

pub struct ClientCtx {
    pub target: Target,
    pub quota: Duration,
    pub trace_sample: f64,
    pub start: Instant,
    /// `--verify`: where reserves and cancels and their answers go.
    pub recorder: Option<Arc<Recorder>>,
}

/// One connection's worth of work: runs until the job queue closes.
pub async fn worker(
    ctx: Arc<ClientCtx>,
    jobs: flume::Receiver<Job>,
    results: mpsc::Sender<Outcome>,
) {
    let mut rng = SmallRng::from_os_rng();
    let mut conn: Option<Http1Conn> = None;
    let mut request = Vec::with_capacity(256);
    let mut body = Vec::new();
    while let Ok(job) = jobs.recv_async().await {
        let recorded = ctx
            .recorder
            .as_ref()
            .filter(|_| job.op.kind != OpKind::Page);
        body.clear();
        let trace = TraceCtx::random(&mut rng, ctx.trace_sample);
        let deadline = job.intended + ctx.quota;
        let picked = Instant::now();
        let (class, status, sent_at, trace) = if picked >= deadline {
            (Class::Timeout, 0, None, trace)
        } else {
            let sent_at = Some(picked - ctx.start);
            write_request(
                &mut request,
                &job.op,
                &ctx.target.base_path,
                &ctx.target.host_str,
                &trace,
            );
            let keep_body = recorded.is_some().then_some(&mut body);
            match tokio::time::timeout_at(
                deadline,
                exchange(&mut conn, &ctx.target, &request, keep_body),
            )
            .await
            {
                Ok(Ok(resp)) => {
                    let trace = TraceCtx {
                        trace_id: resp.trace_id.unwrap_or(trace.trace_id),
                        ..trace
                    };
                    let class = if resp.status >= 500 {
                        Class::ServerError
                    } else {
                        Class::Good
                    };
                    (class, resp.status, sent_at, trace)
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
        if let Some(rec) = recorded {
            rec.record(
                job.op,
                job.intended - ctx.start,
                Instant::now() - ctx.start,
                record::classify(class, status, sent_at.is_some(), &body),
            );
        }
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
    conn: &mut Option<Http1Conn>,
    target: &Target,
    request: &[u8],
    body: Option<&mut Vec<u8>>,
) -> std::result::Result<Response, Http1Error> {
    if let Some(c) = conn.as_mut() {
        match c.exchange(request).await {
            Ok(r) => {
                if let Some(out) = body {
                    c.copy_body(out);
                }
                if r.close {
                    *conn = None;
                }
                return Ok(r);
            }
            // A server closing an idle keep-alive connection is not a failure
            // of this request: retry once on a fresh connection.
            Err(e) if e.stale_connection() => *conn = None,
            Err(e) => return Err(e),
        }
    }
    let mut fresh = Http1Conn::connect(target.addr).await?;
    let r = fresh.exchange(request).await?;
    if let Some(out) = body {
        fresh.copy_body(out);
    }
    if !r.close {
        *conn = Some(fresh);
    }
    Ok(r)
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
        let mut sender: SendRequest<Full<Bytes>> = target.connect().await?;
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
