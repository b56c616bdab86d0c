//! The benchmark's baseline: a bare axum handler that returns a fixed JSON body, read once from
//! a file — the same bytes the page endpoint returns, with none of its work.
//!
//! `cargo run --release -p reservation-service --example bare_page -- page.json 127.0.0.1:18081`

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(addr)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bare_page <body.json> <listen addr>");
    };
    let body: &'static [u8] = Vec::leak(std::fs::read(&file)?);
    let app = Router::new().fallback(move || async move {
        ([(CONTENT_TYPE, "application/json")], body).into_response()
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
