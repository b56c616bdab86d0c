//! Builds the application from its configuration and runs it until shut down: the MySQL pool and
//! migrations, the Redis store, the listeners, the background workers, the graceful shutdown.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use sqlx::MySqlPool;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseArgs;
use crate::profiling::anomaly;
use crate::server;
use crate::state::AppState;
use crate::store::redis::{RedisSettings, RedisStore};
use crate::{cache, repair, routes};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool that connects lazily, so the service starts (and reports not-ready) while MySQL is
/// down, and answers 503 quickly instead of hanging when it goes away.
pub fn mysql_pool(args: &DatabaseArgs) -> anyhow::Result<MySqlPool> {
    let options: MySqlConnectOptions = args
        .database_url
        .parse()
        .context("DATABASE_URL is not a valid MySQL URL")?;
    Ok(MySqlPoolOptions::new()
        .max_connections(args.db_max_connections)
        .acquire_timeout(args.db_acquire_timeout)
        .connect_lazy_with(options))
}

pub async fn migrate(pool: &MySqlPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying migrations failed")
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests for up
/// to the configured grace period.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, None, state, shutdown).await
}

/// As [`run`], with the admin and debug routes on `admin` when given (and then only there).
/// One shutdown covers both listeners: both stop accepting at once and share the grace period.
pub async fn serve(
    public: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let background = CancellationToken::new();
    spawn_workers(&state, &background);
    let grace = state.settings().shutdown_grace;
    let limits = state.limits();
    let stop = CancellationToken::new();
    let mut servers = Vec::new();
    match admin {
        None => {
            let app: Router = routes::app(state);
            servers.push(server::serve(public, app, limits, stop.clone()));
        }
        Some(admin) => {
            let (public_app, admin_app) = routes::split(state);
            servers.push(server::serve(public, public_app, limits, stop.clone()));
            servers.push(server::serve(admin, admin_app, limits, stop.clone()));
        }
    }
    let signal = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            stop.cancel();
        }
    };
    let servers = async move {
        tokio::join!(signal, futures::future::join_all(servers));
    };
    let deadline = async move {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        _ = servers => {}
        _ = deadline => {
            tracing::warn!(?grace, "in-flight requests still running after the grace period");
        }
    }
    background.cancel();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

pub fn redis_store(args: &crate::config::RedisArgs) -> anyhow::Result<RedisStore> {
    RedisStore::new(RedisSettings {
        url: args.redis_url.clone(),
        prefix: args.redis_prefix.clone(),
        op_timeout: args.redis_timeout,
        hot_ttl: args.redis_hot_ttl,
        summary_ttl: args.redis_summary_ttl,
    })
    .context("REDIS_URL is not a valid Redis URL")
}

/// Starts the sweeper, the anomaly profiler and the Redis repairer; they stop when `shutdown` is
/// cancelled.
fn spawn_workers(state: &AppState, shutdown: &CancellationToken) {
    let settings = state.settings();
    if !settings.cache_sweep.max_interval.is_zero() {
        tokio::spawn(cache::run_sweeper(
            state.cache_slot(),
            settings.cache_sweep,
            shutdown.clone(),
        ));
    }
    if let Some(anomaly) = &settings.anomaly {
        tokio::spawn(anomaly::run(
            anomaly.clone(),
            state.latencies_arc(),
            state.cache_slot(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(repair::run(
        state.redis_arc(),
        Duration::from_millis(500),
        shutdown.clone(),
    ));
}
