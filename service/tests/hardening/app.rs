use std::net::SocketAddr;
use std::time::Duration;

use reservation_service::server::HttpLimits;
use reservation_service::startup;
use reservation_service::state::{AppState, Settings};
use reservation_service::store::redis::RedisStore;
use serde_json::Value;
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::serve_args::serve_args;

pub const ADMIN_TOKEN: &str = "hardening-admin-token";

/// The settings `serve` would build from the tests' flags, through the same `Settings::from_args`.
pub fn settings() -> Settings {
    // Room for the shutdown test's in-flight profile (admin_listener.rs).
    Settings::from_args(&serve_args(ADMIN_TOKEN, &["--shutdown-grace=20s"]))
        .expect("the tests' settings are valid")
}

fn unique() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// As `serve` builds its store, from the Redis flags, under a key prefix of its own.
pub fn redis_store() -> RedisStore {
    let prefix = format!("test:hardening:{}:{}:", std::process::id(), unique());
    let args = serve_args(
        ADMIN_TOKEN,
        &[
            &format!("--redis-prefix={prefix}"),
            "--redis-timeout=50ms",
            "--redis-hot-ttl=300s",
            "--redis-summary-ttl=300s",
        ],
    );
    startup::redis_store(&args.redis).expect("redis url")
}

pub fn state(pool: MySqlPool, limits: HttpLimits) -> AppState {
    AppState::with_limits(pool, redis_store(), settings(), limits)
}

pub struct App {
    pub addr: SocketAddr,
    /// Set when the admin routes have their own listener.
    pub admin_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    pub served: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn(pool: MySqlPool, separate_admin: bool, limits: HttpLimits) -> App {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = public.local_addr().unwrap();
    let admin = if separate_admin {
        Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let admin_addr = admin.as_ref().map(|l| l.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(startup::serve(
        public,
        admin,
        state(pool, limits),
        async move {
            let _ = stopped.await;
        },
    ));
    App {
        addr,
        admin_addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        stop: Some(stop),
        served: Some(served),
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.admin_addr.expect("an admin listener"),
            path
        )
    }

    /// GET `url` (from [`App::url`] or [`App::admin_url`]): status and JSON body.
    pub async fn get(&self, url: String) -> (u16, Value) {
        json(self.client.get(url).send().await.unwrap()).await
    }

    /// Sends the shutdown signal, as SIGTERM does.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Status and JSON body; panics when the body is not JSON.
pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, value)
}

/// Asserts the service's error shape with `code`.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
