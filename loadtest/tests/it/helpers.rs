use std::time::SystemTime;

use axum::Router;
use loadtest::cli::{Cli, Command};
use loadtest::run::{self, RunConfig, RunResult};

/// Serve `app` on an ephemeral local port; returns its base URL.
pub async fn spawn(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// A server answering 200 with a small JSON body on every path.
pub fn ok_app() -> Router {
    Router::new().fallback(|| async { axum::Json(serde_json::json!({"ok": true})) })
}

/// Build a run configuration exactly as the CLI would from `args` (after `run`).
pub fn config(args: &[&str]) -> RunConfig {
    let mut full = vec!["loadtest", "run", "--progress", "off"];
    full.extend_from_slice(args);
    match <Cli as clap::Parser>::try_parse_from(full).unwrap().command {
        Command::Run(a) => a.to_config().unwrap(),
        Command::Merge(_) => unreachable!(),
    }
}

pub async fn run(args: &[&str]) -> RunResult {
    run::run(&config(args)).await.unwrap()
}

pub fn unix_us() -> i64 {
    loadtest::util::unix_micros(SystemTime::now())
}

pub fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("loadtest-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
