//! The receiver against a real OTLP/gRPC client and a hand-written OTLP/HTTP request.

use std::time::{Duration, Instant};

use leaklab_otlp_receiver::proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use leaklab_otlp_receiver::proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use leaklab_otlp_receiver::proto::tonic::common::v1::any_value::Value;
use leaklab_otlp_receiver::proto::tonic::common::v1::{AnyValue, KeyValue};
use leaklab_otlp_receiver::proto::tonic::resource::v1::Resource;
use leaklab_otlp_receiver::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use leaklab_otlp_receiver::{Answer, Options, Protocol, Receiver};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One resource (`service.name` = `service`) with spans of these names, in trace `trace`.
fn request(service: &str, trace: u8, names: &[&str]) -> ExportTraceServiceRequest {
    let spans = names
        .iter()
        .enumerate()
        .map(|(i, name)| Span {
            trace_id: vec![trace; 16],
            span_id: vec![i as u8 + 1; 8],
            name: (*name).to_owned(),
            ..Span::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(service.into())),
                    }),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

async fn export_grpc(receiver: &Receiver, request: ExportTraceServiceRequest) {
    let mut client = TraceServiceClient::connect(receiver.endpoint())
        .await
        .unwrap();
    client.export(request).await.unwrap();
}

#[tokio::test]
async fn grpc_exports_are_kept_with_their_resource() {
    let receiver = Receiver::start(Options::default()).await.unwrap();
    export_grpc(&receiver, request("a", 1, &["one", "two"])).await;
    export_grpc(&receiver, request("b", 2, &["three"])).await;

    let received = receiver.received();
    assert_eq!(received.exports(), 2);
    assert_eq!(received.span_count(), 3);
    let names: Vec<String> = received
        .of_trace(&[1; 16])
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(received.named("three").len(), 1);
    let services: Vec<Value> = received
        .resources()
        .into_iter()
        .map(|r| r["service.name"].clone())
        .collect();
    assert_eq!(
        services,
        ["a", "a", "b"].map(|s| Value::StringValue(s.into()))
    );

    let stopped = receiver.stop().await.unwrap();
    assert_eq!(stopped.take().len(), 3);
    assert!(stopped.spans().is_empty(), "taken");
}

#[tokio::test]
async fn a_counting_receiver_keeps_nothing() {
    let options = Options {
        keep_spans: false,
        ..Options::default()
    };
    let receiver = Receiver::start(options).await.unwrap();
    export_grpc(&receiver, request("a", 1, &["one", "two"])).await;
    assert_eq!(receiver.received().span_count(), 2);
    assert!(receiver.received().spans().is_empty());
}

/// A raw HTTP/1.1 request: the status line and the body of the answer.
async fn post(receiver: &Receiver, path: &str, body: &[u8]) -> (String, Vec<u8>) {
    let mut socket = tokio::net::TcpStream::connect(receiver.addr())
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        receiver.addr(),
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, answer[split + 4..].to_vec())
}

#[tokio::test]
async fn http_protobuf_exports_are_kept() {
    let options = Options {
        protocol: Protocol::HttpProtobuf,
        ..Options::default()
    };
    let receiver = Receiver::start(options).await.unwrap();
    let body = request("a", 3, &["one"]).encode_to_vec();
    let (status, answer) = post(&receiver, "/v1/traces", &body).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(answer.is_empty(), "an empty ExportTraceServiceResponse");
    assert_eq!(receiver.received().of_trace(&[3; 16]).len(), 1);

    let (status, _) = post(&receiver, "/v1/traces", b"\xff\xff not protobuf").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(receiver.received().exports(), 1);
}

#[tokio::test]
async fn a_late_receiver_keeps_the_export_and_answers_after_the_delay() {
    let options = Options {
        answer: Answer::After(Duration::from_millis(300)),
        ..Options::default()
    };
    let receiver = Receiver::start(options).await.unwrap();
    let started = Instant::now();
    export_grpc(&receiver, request("a", 1, &["one"])).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(receiver.received().span_count(), 1);
}

#[tokio::test]
async fn a_silent_receiver_accepts_and_never_answers() {
    let options = Options {
        answer: Answer::Never,
        ..Options::default()
    };
    let receiver = Receiver::start(options).await.unwrap();
    let mut socket = tokio::net::TcpStream::connect(receiver.addr())
        .await
        .unwrap();
    socket.write_all(b"PRI * HTTP/2.0\r\n\r\n").await.unwrap();
    let mut byte = [0; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut byte)).await;
    assert!(read.is_err(), "no answer, not even a close: {read:?}");
    assert_eq!(receiver.received().exports(), 0);
    // Stopped, it lets go of the connection.
    receiver.stop().await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

#[tokio::test]
async fn run_until_stops_on_the_signal_and_returns_what_it_got() {
    let receiver = Receiver::start(Options::default()).await.unwrap();
    export_grpc(&receiver, request("a", 1, &["one"])).await;
    let received = receiver.run_until(async {}).await.unwrap();
    assert_eq!(received.take().len(), 1);
}
