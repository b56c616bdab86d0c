//! Connection handling of the hot-path client against raw TCP servers.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers;

/// Answers one request per connection, then closes it *without* announcing
/// `connection: close`: every kept-alive connection goes stale while idle.
async fn one_shot_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_keep_alive_connections_are_replaced_not_counted() {
    let url = one_shot_server().await;
    let r = helpers::run(&[
        "--target",
        &url,
        "--rate",
        "50",
        "--duration",
        "2s",
        "--connections",
        "2",
    ])
    .await;
    let t = &r.summary.totals.counts;
    assert_eq!((t.sent, t.good, t.connection), (100, 100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_connection_errors() {
    // Bind then drop: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let r = helpers::run(&["--target", &url, "--rate", "50", "--duration", "1s"]).await;
    let t = &r.summary.totals.counts;
    assert_eq!((t.sent, t.connection, t.good), (50, 50, 0));
    assert_eq!(r.summary.verdict.exit_code, loadtest::EXIT_SLO_MISSED);
    // No latency for answers that never came.
    assert_eq!(r.summary.totals.latency.count, 0);
}
