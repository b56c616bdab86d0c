//! The hot path's HTTP/1.1 client: one request at a time on one keep-alive
//! connection, written as bytes and parsed with `httparse`.
//!
//! Why not hyper here: a hyper client connection is two tasks joined by
//! channels (request, response and body each cross one), which made the
//! generator spend several times wrk's user-space CPU per request. The
//! generator only needs GET/PUT/DELETE without bodies and must read whole
//! responses (Content-Length, chunked, or until close); that fits here.
//! Admin calls still use hyper (see `client::one_off`).

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::model::{Op, TraceCtx};
use crate::trace::parse_trace_id;

/// Enough for any sane response head; more is a malformed response.
const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The peer closed the connection before a complete response;
    /// `started` tells whether any byte of it had arrived.
    #[error("connection closed before the response was complete")]
    Closed { started: bool },
}

impl Http1Error {
    /// Failures that mean "this kept-alive connection was already dead when
    /// the request was written", not "the server failed this request".
    pub fn stale_connection(&self) -> bool {
        match self {
            Http1Error::Closed { started } => !started,
            Http1Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            Http1Error::Malformed(_) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Trace id the server reported (`traceparent` or `x-trace-id`).
    pub trace_id: Option<u128>,
    /// The server will close the connection after this response.
    pub close: bool,
}

enum Body {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

pub struct Http1Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the last response's body starts in `buf`, and whether it is chunked.
    body_at: usize,
    body_len: Option<usize>,
    chunked: bool,
}

/// Serialize a request for `op` into `out` (cleared first; reused across requests).
pub fn write_request(out: &mut Vec<u8>, op: &Op, base_path: &str, host: &str, trace: &TraceCtx) {
    out.clear();
    let method = op.kind.method();
    let _ = write!(out, "{method} {base_path}");
    let _ = op.write_path(out);
    let _ = write!(
        out,
        " HTTP/1.1\r\nhost: {host}\r\ntraceparent: 00-{:032x}-{:016x}-{:02x}\r\n",
        trace.trace_id, trace.span_id, trace.sampled as u8
    );
    if method != "GET" {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

impl Http1Conn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are small and latency is the measurement: never batch them.
        stream.set_nodelay(true)?;
        Ok(Http1Conn {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            body_at: 0,
            body_len: Some(0),
            chunked: false,
        })
    }

    /// Appends what the socket has; 0 means end of stream.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Send `request` and read the whole response.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Response, Http1Error> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let (head_len, status, body, trace_id, close) = loop {
            if self.read_more().await? == 0 {
                return Err(Http1Error::Closed {
                    started: !self.buf.is_empty(),
                });
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let head_len = match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => continue,
                Err(e) => return Err(Http1Error::Malformed(e.to_string())),
            };
            let status = resp.code.unwrap_or(0);
            if (100..200).contains(&status) {
                // Interim answer (e.g. 103): the real one follows.
                self.buf.drain(..head_len);
                continue;
            }
            let mut body = if status == 204 || status == 304 {
                Body::None
            } else {
                Body::UntilClose
            };
            let mut trace_id = None;
            let mut close = resp.version == Some(0);
            for h in resp.headers.iter() {
                let name = h.name;
                if name.eq_ignore_ascii_case("content-length") {
                    let len = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| Http1Error::Malformed("bad content-length".into()))?;
                    if !matches!(body, Body::None | Body::Chunked) {
                        body = Body::Length(len);
                    }
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    if h.value.eq_ignore_ascii_case(b"chunked") && !matches!(body, Body::None) {
                        body = Body::Chunked;
                    }
                } else if name.eq_ignore_ascii_case("connection") {
                    close = h.value.eq_ignore_ascii_case(b"close");
                } else if trace_id.is_none()
                    && (name.eq_ignore_ascii_case("traceparent")
                        || name.eq_ignore_ascii_case("x-trace-id"))
                {
                    trace_id = parse_trace_id(h.value);
                }
            }
            break (head_len, status, body, trace_id, close);
        };
        self.body_at = head_len;
        self.body_len = match body {
            Body::None => Some(0),
            Body::Length(len) => Some(len),
            Body::Chunked | Body::UntilClose => None,
        };
        self.chunked = matches!(body, Body::Chunked);
        let close = match body {
            Body::None => close,
            Body::Length(len) => {
                while self.buf.len() < head_len + len {
                    if self.read_more().await? == 0 {
                        return Err(Http1Error::Closed { started: true });
                    }
                }
                close
            }
            Body::Chunked => {
                self.read_chunked(head_len).await?;
                close
            }
            Body::UntilClose => {
                while self.read_more().await? != 0 {}
                true
            }
        };
        Ok(Response {
            status,
            trace_id,
            close,
        })
    }

    /// Copy the body of the last complete response into `out` (cleared first), de-chunked.
    /// Only what `--verify` needs: the hot path never calls it.
    pub fn copy_body(&self, out: &mut Vec<u8>) {
        out.clear();
        let rest = self.buf.get(self.body_at..).unwrap_or_default();
        if !self.chunked {
            let len = self.body_len.unwrap_or(rest.len()).min(rest.len());
            out.extend_from_slice(&rest[..len]);
            return;
        }
        let mut pos = 0;
        while let Ok(httparse::Status::Complete((used, size))) =
            httparse::parse_chunk_size(&rest[pos..])
        {
            let start = pos + used;
            let end = start + size as usize;
            if size == 0 || end > rest.len() {
                return;
            }
            out.extend_from_slice(&rest[start..end]);
            pos = end + 2;
            if pos > rest.len() {
                return;
            }
        }
    }

    /// Consume a chunked body starting at `pos`, through the final empty line.
    async fn read_chunked(&mut self, mut pos: usize) -> Result<(), Http1Error> {
        loop {
            match httparse::parse_chunk_size(&self.buf[pos..]) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    pos += used;
                    return self.read_trailers(pos).await;
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    let end = pos + used + size as usize + 2;
                    while self.buf.len() < end {
                        if self.read_more().await? == 0 {
                            return Err(Http1Error::Closed { started: true });
                        }
                    }
                    pos = end;
                }
                Ok(httparse::Status::Partial) => {
                    if self.read_more().await? == 0 {
                        return Err(Http1Error::Closed { started: true });
                    }
                }
                Err(_) => return Err(Http1Error::Malformed("bad chunk size".into())),
            }
        }
    }

    /// Trailer lines after the last chunk, up to and including the empty line.
    async fn read_trailers(&mut self, mut pos: usize) -> Result<(), Http1Error> {
        loop {
            match self.buf[pos..].windows(2).position(|w| w == b"\r\n") {
                Some(0) => return Ok(()),
                Some(i) => pos += i + 2,
                None => {
                    if self.read_more().await? == 0 {
                        return Err(Http1Error::Closed { started: true });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OpKind;
    use tokio::net::TcpListener;

    /// A server that reads one request then writes `reply` (and keeps the socket open).
    async fn serve_once(reply: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            // Split the reply to exercise partial reads.
            let mid = reply.len() / 2;
            s.write_all(&reply[..mid]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            s.write_all(&reply[mid..]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        });
        addr
    }

    async fn one(reply: &'static [u8]) -> Result<Response, Http1Error> {
        let mut c = Http1Conn::connect(serve_once(reply).await).await.unwrap();
        c.exchange(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await
    }

    #[tokio::test]
    async fn content_length_chunked_and_close_delimited_bodies() {
        let r = one(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-trace-id: 000000000000000000000000000000ab\r\n\r\nhello")
            .await
            .unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                trace_id: Some(0xab),
                close: false
            }
        );
        let r = one(b"HTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nt: 1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(r.status, 503);
        let r = one(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
        assert_eq!(r.status, 204);
        let r = one(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 NF\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            r,
            Response {
                status: 404,
                trace_id: None,
                close: true
            }
        );
    }

    #[tokio::test]
    async fn bodies_can_be_copied_out() {
        let mut out = Vec::new();
        for reply in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        ] {
            let reply: &'static [u8] = reply;
            let mut c = Http1Conn::connect(serve_once(reply).await).await.unwrap();
            c.exchange(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            c.copy_body(&mut out);
            assert_eq!(out, b"hello");
        }
    }

    #[tokio::test]
    async fn truncated_and_malformed_responses_are_errors() {
        let e = one(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort").await;
        // The test server keeps the socket open 200 ms then drops it.
        assert!(
            matches!(e, Err(Http1Error::Closed { started: true })),
            "{e:?}"
        );
        let e = one(b"garbage\r\n\r\n").await;
        assert!(matches!(e, Err(Http1Error::Malformed(_))), "{e:?}");
    }

    #[test]
    fn requests_are_well_formed() {
        let mut out = Vec::new();
        let t = TraceCtx {
            trace_id: 1,
            span_id: 2,
            sampled: true,
        };
        let op = Op {
            kind: OpKind::Reserve,
            activity: 3,
            user: 4,
        };
        write_request(&mut out, &op, "/api", "h:1", &t);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PUT /api/v1/activities/3/reservations/4 HTTP/1.1\r\nhost: h:1\r\n\
             traceparent: 00-00000000000000000000000000000001-0000000000000002-01\r\ncontent-length: 0\r\n\r\n"
        );
    }
}
