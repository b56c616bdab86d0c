use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reservation_service::server::HttpLimits;
use reservation_service::startup;
use reservation_service::state::{AppState, Settings};
use reservation_service::store::redis::RedisStore;
use serde_json::Value;
use sqlx::MySqlPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub use crate::serve_args::serve_args;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()))
            .with_test_writer()
            .try_init();
    }
}

/// A Redis store as `serve` builds it, from the Redis flags.
pub fn redis_store(url: &str, prefix: &str, timeout: Duration) -> RedisStore {
    let args = serve_args(
        ADMIN_TOKEN,
        &[
            &format!("--redis-url={url}"),
            &format!("--redis-prefix={prefix}"),
            &format!("--redis-timeout={}ms", timeout.as_millis()),
            "--redis-hot-ttl=300s",
            "--redis-summary-ttl=300s",
        ],
    );
    startup::redis_store(&args.redis).expect("redis url")
}

/// The settings `serve` would build from the tests' flags, through the same `Settings::from_args`.
pub fn settings() -> Settings {
    Settings::from_args(&serve_args(ADMIN_TOKEN, &["--shutdown-grace=2s"]))
        .expect("the tests' settings are valid")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub pool: MySqlPool,
    /// The app's Redis key prefix (unique per app).
    pub redis_prefix: String,
    /// The app's state, shared with the running app (its latency window, cache...).
    pub state: AppState,
    _stop: oneshot::Sender<()>,
}

pub struct AppOptions {
    pub settings: Settings,
    pub redis_url: String,
    pub redis_timeout: Duration,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            settings: settings(),
            redis_url: redis_url(),
            redis_timeout: Duration::from_millis(50),
        }
    }
}

/// Starts the app on 127.0.0.1:0 against the test's own database and its own Redis key prefix.
pub async fn spawn_app(pool: MySqlPool) -> TestApp {
    spawn_app_with(pool, AppOptions::default()).await
}

pub async fn spawn_app_with(pool: MySqlPool, options: AppOptions) -> TestApp {
    spawn_app_aged(pool, options, None).await
}

/// As [`spawn_app_with`], replaying `preage` into the cache before the app listens, as
/// `serve --cache-preage-hits` does.
pub async fn spawn_app_aged(
    pool: MySqlPool,
    options: AppOptions,
    preage: Option<reservation_service::cache::preage::Preage>,
) -> TestApp {
    init_logs();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = format!(
        "test:{}:{}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand_suffix()
    );
    let redis = redis_store(&options.redis_url, &prefix, options.redis_timeout);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let related = options.settings.related_activities;
    // As `serve` builds it: a runtime flip stored in this database wins over the settings' mode.
    let state = AppState::restore(pool.clone(), redis, options.settings, HttpLimits::default())
        .await
        .expect("build the app state");
    if let Some(preage) = preage {
        reservation_service::cache::preage::run(&pool, state.cache(), preage, related)
            .await
            .expect("pre-age the cache");
    }
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(startup::run(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        pool,
        redis_prefix: prefix,
        state,
        _stop: stop,
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET an admin or debug route with the test's admin token.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        body(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn put(&self, path: &str) -> (u16, Value) {
        body(self.client.put(self.url(path)).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        body(self.client.delete(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, json: &Value) -> (u16, Value) {
        body(
            self.client
                .post(self.url(path))
                .json(json)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn create_activity(&self, capacity: Option<u32>) -> u64 {
        let (status, body) = self
            .post_json(
                "/v1/activities",
                &serde_json::json!({
                    "title": "Test activity",
                    "starts_at": "2030-01-01T10:00:00Z",
                    "capacity": capacity,
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_u64().unwrap()
    }
}

pub async fn body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, value)
}

/// A TCP proxy in front of a real server that a test can cut, restore or slow down, to play a
/// dependency that dies, comes back, or answers late.
pub struct FaultProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    latency_ms: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let latency_ms = Arc::new(AtomicU64::new(0));
        let generation = Arc::new(AtomicU64::new(0));
        let (u, l, g) = (up.clone(), latency_ms.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !u.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (l, g, u) = (l.clone(), g.clone(), u.clone());
                tokio::spawn(async move { pipe(client, upstream, l, g, u).await });
            }
        });
        Self {
            addr,
            up,
            latency_ms,
            generation,
        }
    }

    /// Refuses new connections and cuts open ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }
}

async fn pipe(
    client: TcpStream,
    upstream: SocketAddr,
    latency_ms: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    up: Arc<AtomicBool>,
) {
    let born = generation.load(Ordering::SeqCst);
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let alive = {
        let generation = generation.clone();
        move || generation.load(Ordering::SeqCst) == born && up.load(Ordering::SeqCst)
    };
    let alive2 = alive.clone();
    let l2 = latency_ms.clone();
    let upstream_dir = async move { forward(&mut cr, &mut sw, &latency_ms, &alive).await };
    let downstream_dir = async move { forward(&mut sr, &mut cw, &l2, &alive2).await };
    tokio::select! {
        _ = upstream_dir => {}
        _ = downstream_dir => {}
    }
}

async fn forward(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    latency_ms: &AtomicU64,
    alive: &impl Fn() -> bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = wait_dead(alive) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = latency_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if !alive() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn wait_dead(alive: &impl Fn() -> bool) {
    while alive() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn redis_addr() -> SocketAddr {
    let url = redis_url();
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let hostport = hostport.rsplit('@').next().unwrap().to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .unwrap()
        .next()
        .unwrap()
}

/// Polls `check` until it holds or `within` runs out.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
