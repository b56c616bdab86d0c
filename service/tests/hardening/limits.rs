use reservation_service::server::HttpLimits;
use sqlx::MySqlPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::{assert_error, json, spawn};

#[sqlx::test(migrations = "../migrations")]
async fn long_uris_get_a_json_414(pool: MySqlPool) {
    let app = spawn(pool, false, HttpLimits::default()).await;
    let limit = HttpLimits::default().max_uri_bytes;
    // Just under the limit: served (404, the activity does not exist).
    let path = "/v1/activities/1/page?user_id=1&pad=";
    let fits = format!("{path}{}", "x".repeat(limit - path.len()));
    let (status, body) = app.get(app.url(&fits)).await;
    assert_error(status, &body, 404, "not_found");
    // One byte over, on an API route, an unknown route and an admin route.
    for path in [
        "/v1/activities/1/page?user_id=1&pad=",
        "/nope?",
        "/admin/cache?",
    ] {
        let long = format!("{path}{}", "x".repeat(limit + 1 - path.len()));
        let (status, body) = app.get(app.url(&long)).await;
        assert_error(status, &body, 414, "uri_too_long");
    }
    // A long path, not only a long query string.
    let long = format!("/v1/activities/{}", "1".repeat(limit));
    let (status, body) = app.get(app.url(&long)).await;
    assert_error(status, &body, 414, "uri_too_long");
}

#[sqlx::test(migrations = "../migrations")]
async fn too_many_or_too_large_headers_get_a_json_431(pool: MySqlPool) {
    let app = spawn(pool, false, HttpLimits::default()).await;
    let limits = HttpLimits::default();
    let url = app.url("/healthz");

    let mut request = app.client.get(&url);
    for i in 0..limits.max_headers - 4 {
        request = request.header(format!("x-h{i}"), "1");
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "just under the header count");

    let mut request = app.client.get(&url);
    for i in 0..=limits.max_headers {
        request = request.header(format!("x-h{i}"), "1");
    }
    let (status, body) = json(request.send().await.unwrap()).await;
    assert_error(status, &body, 431, "headers_too_large");

    let big = "v".repeat(limits.max_header_bytes);
    let (status, body) = json(
        app.client
            .get(&url)
            .header("x-big", &big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 431, "headers_too_large");

    let fits = "v".repeat(limits.max_header_bytes / 2);
    let response = app
        .client
        .get(&url)
        .header("x-big", &fits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrations = "../migrations")]
async fn limits_are_configurable(pool: MySqlPool) {
    let limits = HttpLimits {
        max_uri_bytes: 100,
        max_header_bytes: 512,
        max_headers: 10,
    };
    let app = spawn(pool, false, limits).await;
    let (status, body) = json(
        app.client
            .get(app.url(&format!("/healthz?{}", "a".repeat(100))))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 414, "uri_too_long");
    let (status, body) = json(
        app.client
            .get(app.url("/healthz"))
            .header("cookie", "c".repeat(600))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 431, "headers_too_large");
}

/// Sends `request` on a raw connection and returns the whole answer (hyper closes the connection
/// after its own error responses).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("an answer, not a hang")
    .expect("an answer, not a reset");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Past hyper's own caps (four times ours) hyper answers by itself, before any of our code runs:
/// a status line and no body, then it closes. Never a reset without an answer.
#[sqlx::test(migrations = "../migrations")]
async fn past_the_hard_caps_hyper_still_answers(pool: MySqlPool) {
    let limits = HttpLimits::default();
    let app = spawn(pool, false, limits).await;

    let mut request = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    for i in 0..limits.hard_max_headers() + 1 {
        request.push_str(&format!("x-h{i}: 1\r\n"));
    }
    request.push_str("\r\n");
    let answer = raw(app.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

    let request = format!(
        "GET /healthz?{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "q".repeat(70_000)
    );
    let answer = raw(app.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");

    // A head well over hyper's read buffer: hyper answers once the buffer is full, while the
    // client is still sending (the rest of the write may then fail; the answer arrived first).
    let request = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(2 * limits.hard_max_head_bytes())
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut read, mut write) = stream.split();
    let exchange = async {
        tokio::join!(write.write_all(request.as_bytes()), async {
            let mut answer = Vec::new();
            let _ = read.read_to_end(&mut answer).await;
            answer
        })
    };
    let (_, answer) = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .expect("an answer, not a hang");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

    // The service is unharmed.
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
