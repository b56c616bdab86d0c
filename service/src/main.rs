// jemalloc as the allocator: its statistics feed /metrics and its sampling profiler serves
// /debug/pprof/heap, where the leaked frequency nodes show up by allocation site.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Heap profiling on from the start, one sample per 512 KiB allocated (2^19 bytes): fine enough to
/// see the cache's per-node allocations add up, and on from the start because a leak is found
/// by what was allocated before anyone looked. Not free: each sample takes a backtrace through
/// libgcc's DWARF unwinder: about 5 % of a page view's instructions and 6 % of the page
/// endpoint's throughput (docs/benchmarks.md, "Heap profiling's cost"). `MALLOC_CONF=prof_active:false`
/// starts the service without it.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";

use anyhow::Context;
use clap::Parser;
use reservation_service::cache::preage;
use reservation_service::config::{Cli, Command};
use reservation_service::server::HttpLimits;
use reservation_service::startup;
use reservation_service::state::{AppState, Settings};
use reservation_service::{seed, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Held to the end of main: dropping it flushes the spans still queued.
    let telemetry = telemetry::init(&cli.log, &cli.telemetry)?;
    let result = match cli.command {
        Command::Serve(args) => {
            let mut settings = Settings::from_args(&args)?;
            settings.request_sampler = telemetry.request_sampler();
            let limits = HttpLimits::from_args(&args)?;
            let pool = startup::mysql_pool(&args.database)?;
            if !args.skip_migrations {
                startup::migrate(&pool).await?;
            }
            let redis = startup::redis_store(&args.redis)?;
            let related = settings.related_activities;
            // After the migrations, before pre-ageing: a runtime flip stored in MySQL wins over
            // CACHE_MODE (said at WARN), and pre-ageing then ages the mode restored.
            let state = AppState::restore(pool, redis, settings, limits).await?;
            if args.cache.cache_preage_hits > 0 {
                tracing::info!(
                    hits = args.cache.cache_preage_hits,
                    cache_mode = %state.cache().mode(),
                    "pre-ageing the cache before listening (CACHE_PREAGE_HITS=0 skips it)"
                );
                let report = preage::run(
                    state.db(),
                    state.cache(),
                    preage::Preage {
                        hits: args.cache.cache_preage_hits,
                        keys: args.cache.cache_preage_keys,
                        zipf: args.cache.cache_preage_zipf,
                    },
                    related,
                )
                .await?;
                tracing::info!(?report, "cache pre-aged");
            }
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            tracing::info!(
                addr = %listener.local_addr()?,
                cache_mode = %state.cache().mode(),
                mode_source = state.cache_and_origin().1.source.as_str(),
                "reservation service listening"
            );
            let admin = match args.admin_listen_addr {
                Some(addr) => {
                    let admin = tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen on {addr} (admin)"))?;
                    tracing::info!(addr = %admin.local_addr()?, "admin and debug routes listening");
                    Some(admin)
                }
                None => None,
            };
            startup::serve(listener, admin, state, startup::shutdown_signal()).await
        }
        Command::Seed(args) => {
            let pool = startup::mysql_pool(&args.database)?;
            startup::migrate(&pool).await?;
            let report = seed::run(&pool, &args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Migrate(args) => {
            let pool = startup::mysql_pool(&args)?;
            startup::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
    };
    telemetry.shutdown();
    result
}
