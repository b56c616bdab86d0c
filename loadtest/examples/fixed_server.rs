//! A tiny HTTP server answering a fixed JSON document on every path: the
//! common target of the wrk / loadtest benchmark (bench/vs_wrk.sh).
//!
//! Usage: fixed_server [ADDR] [WORKER_THREADS]   (default 127.0.0.1:18080, 1)

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;

const BODY: &str = r#"{"activity":{"id":1,"title":"Morning run","capacity":100,"reserved":42},"user":{"id":7,"reserved":false}}"#;

async fn fixed() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], BODY)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".into());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("fixed_server listening on {}", listener.local_addr()?);
            let app = Router::new().fallback(fixed);
            axum::serve(listener, app).await
        })
}
