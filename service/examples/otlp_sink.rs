//! A do-nothing OTLP/gRPC collector for benchmarks: accepts trace exports, counts the spans, and
//! prints the running count to stdout every second.
//!
//! `cargo run --release -p reservation-service --example otlp_sink -- 127.0.0.1:14317`

use leaklab_otlp_receiver::{Options, Receiver};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: otlp_sink <listen addr>"))?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // Counts, keeps nothing: its memory must not grow with the benchmark.
    let options = Options {
        keep_spans: false,
        ..Options::default()
    };
    let sink = Receiver::serve(listener, options)?;
    let count = sink.received().clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            println!("{}", count.span_count());
        }
    });
    sink.run_until(std::future::pending()).await?;
    Ok(())
}
