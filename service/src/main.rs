use anyhow::Context;
use clap::Parser;
use reservation_service::config::{Cli, Command};
use reservation_service::startup::{self, AppState, Settings};
use reservation_service::{seed, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Held to the end of main: dropping it flushes the spans still queued.
    let telemetry = telemetry::init(&cli.log, &cli.telemetry)?;
    let result = match cli.command {
        Command::Serve(args) => {
            let settings = Settings::from_args(&args)?;
            let pool = startup::mysql_pool(&args.database)?;
            if !args.skip_migrations {
                startup::migrate(&pool).await?;
            }
            let hot = startup::hot_store(&args.redis)?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            tracing::info!(
                addr = %listener.local_addr()?,
                cache_mode = %settings.cache.mode,
                "reservation service listening"
            );
            startup::run(
                listener,
                AppState::new(pool, hot, settings),
                startup::shutdown_signal(),
            )
            .await
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
