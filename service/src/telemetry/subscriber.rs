//! Composition of the subscriber: the log layer, the OpenTelemetry layer and the filter that
//! keeps an unsampled request's spans out of both.

use std::sync::atomic::Ordering;

use tracing::Subscriber;
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::filter::UnsampledSpansOff;
use super::json_log::WithTraceIds;
use super::provider::{Telemetry, Tracing};
use crate::config::{LogArgs, LogFormat, TelemetryArgs};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use opentelemetry::trace::TraceId;

    use super::super::request::{REQUEST_TRACE, RequestTrace, request_span};

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
}
