//! An OTLP/gRPC receiver for lab runs where no Jaeger runs: it keeps the spans it receives and,
//! on SIGINT or SIGTERM, writes what a user would read off Jaeger — per span name the count and
//! duration percentiles, and the slowest request traces as span trees — to `<out>/spans.json`
//! and `<out>/slowest-traces.txt`, and the requests that waited longest for the cache lock to
//! `<out>/lock-wait-traces.txt`.
//!
//! `cargo run --release -p reservation-service --example span_report -- 127.0.0.1:14317 out/`

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use leaklab_otlp_receiver::proto::tonic::common::v1::any_value::Value;
use leaklab_otlp_receiver::proto::tonic::trace::v1::Span;
use leaklab_otlp_receiver::{Options, Receiver};

/// How many of the slowest request traces to print as trees.
const SLOWEST: usize = 5;

#[derive(Debug, Clone)]
struct SpanRecord {
    trace_id: String,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    start_ns: u64,
    duration_ns: u64,
    /// The span's status was "error" (e.g. a Redis call that timed out on the client).
    error: bool,
    attributes: Vec<(String, String)>,
}

impl From<Span> for SpanRecord {
    fn from(s: Span) -> Self {
        SpanRecord {
            trace_id: hex(&s.trace_id),
            span_id: s.span_id,
            parent: s.parent_span_id,
            name: s.name,
            start_ns: s.start_time_unix_nano,
            duration_ns: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
            error: s.status.as_ref().is_some_and(|st| st.code == 2),
            attributes: s
                .attributes
                .into_iter()
                .filter_map(|kv| Some((kv.key, show(kv.value?.value?))))
                .collect(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn show(value: Value) -> String {
    match value {
        Value::StringValue(s) => s,
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr<'a>(span: &'a SpanRecord, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e6 * 1000.0).round() / 1000.0
}

/// Spans are grouped by name, and client spans by database and operation too, so "redis GET"
/// and "mysql SELECT" read as the incident team's client-side timings did.
fn group_key(span: &SpanRecord) -> String {
    match attr(span, "db.system.name") {
        Some(db) => format!(
            "{} [{db} {}]",
            span.name,
            attr(span, "db.operation.name").unwrap_or("?")
        ),
        None => span.name.clone(),
    }
}

fn summary(spans: &[SpanRecord]) -> serde_json::Value {
    let mut groups: HashMap<String, (Vec<u64>, usize)> = HashMap::new();
    for span in spans {
        let group = groups.entry(group_key(span)).or_default();
        group.0.push(span.duration_ns);
        group.1 += usize::from(span.error);
    }
    let mut rows: Vec<_> = groups
        .into_iter()
        .map(|(name, (mut d, errors))| {
            d.sort_unstable();
            let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
            serde_json::json!({
                "span": name,
                "count": d.len(),
                "errors": errors,
                "p50_ms": ms(at(0.5)),
                "p99_ms": ms(at(0.99)),
                "max_ms": ms(*d.last().expect("non-empty group")),
            })
        })
        .collect();
    rows.sort_by(|a, b| a["span"].as_str().cmp(&b["span"].as_str()));
    serde_json::json!({ "spans": spans.len(), "by_name": rows })
}

/// The slowest HTTP server spans, each printed with its descendants, indented, in start order.
fn slowest_traces(spans: &[SpanRecord]) -> String {
    print_traces(spans, |server| server.duration_ns)
}

/// The request traces that waited longest for the cache lock, printed as [`slowest_traces`]
/// does. The slowest requests are often not these: a request stalled behind a blocked runtime
/// worker shows its time in a Redis or MySQL span, the symptom that misled the incident team.
fn lock_wait_traces(spans: &[SpanRecord]) -> String {
    let mut waits: HashMap<&str, u64> = HashMap::new();
    for span in spans {
        if let Some(wait) = attr(span, "cache.lock_wait_us").and_then(|w| w.parse::<u64>().ok()) {
            let max = waits.entry(span.trace_id.as_str()).or_default();
            *max = (*max).max(wait);
        }
    }
    print_traces(spans, |server| {
        waits.get(server.trace_id.as_str()).copied().unwrap_or(0)
    })
}

/// The `SLOWEST` HTTP server spans ranked by `key`, each with its descendants.
fn print_traces(spans: &[SpanRecord], key: impl Fn(&SpanRecord) -> u64) -> String {
    let mut servers: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| attr(s, "http.request.method").is_some())
        .collect();
    servers.sort_by_key(|s| std::cmp::Reverse(key(s)));
    let mut out = String::new();
    for root in servers.into_iter().take(SLOWEST) {
        let _ = writeln!(out, "trace {}", root.trace_id);
        let mut in_trace: Vec<&SpanRecord> = spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id)
            .collect();
        in_trace.sort_by_key(|s| s.start_ns);
        print_tree(&mut out, root, &in_trace, root.start_ns, 1);
        out.push('\n');
    }
    out
}

fn print_tree(out: &mut String, span: &SpanRecord, all: &[&SpanRecord], t0: u64, depth: usize) {
    let shown: Vec<String> = span
        .attributes
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "http.route"
                    | "http.response.status_code"
                    | "error.type"
                    | "db.operation.name"
                    | "db.collection.name"
                    | "cache.mode"
                    | "cache.hit"
                    | "cache.keys"
                    | "cache.hits"
                    | "cache.lock_wait_us"
                    | "cache.lock_wait_max_us"
                    | "cache.nodes_walked"
            )
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        out,
        "{:indent$}{} +{:.3} ms, {:.3} ms  {}",
        "",
        span.name,
        ms(span.start_ns.saturating_sub(t0)),
        ms(span.duration_ns),
        shown.join(" "),
        indent = depth * 2
    );
    for child in all.iter().filter(|s| s.parent == span.span_id) {
        print_tree(out, child, all, t0, depth + 1);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: span_report <listen addr> <output dir>");
    };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let receiver = Receiver::serve(listener, Options::default())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let received = receiver.run_until(stop).await?;
    let spans: Vec<SpanRecord> = received
        .take()
        .into_iter()
        .map(|r| SpanRecord::from(r.span))
        .collect();
    std::fs::write(
        out.join("spans.json"),
        serde_json::to_vec_pretty(&summary(&spans))?,
    )?;
    std::fs::write(out.join("slowest-traces.txt"), slowest_traces(&spans))?;
    std::fs::write(out.join("lock-wait-traces.txt"), lock_wait_traces(&spans))?;
    eprintln!(
        "span_report: {} spans written to {}",
        spans.len(),
        out.display()
    );
    Ok(())
}
