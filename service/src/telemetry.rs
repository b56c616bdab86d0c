//! Logging set-up. The subscriber is composed here and nowhere else.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogArgs, LogFormat};

pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log_filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter {:?}: {e}", args.log_filter))?;
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Human => registry.with(tracing_subscriber::fmt::layer()).try_init()?,
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init()?,
    }
    Ok(())
}
