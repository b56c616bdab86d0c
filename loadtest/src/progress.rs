//! Live progress: an indicatif bar on a terminal, plain periodic lines
//! otherwise (CI logs), nothing when asked.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::collect::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    Bar,
    Plain,
    Off,
}

/// Plain lines every this many seconds: often enough to watch a CI job.
const PLAIN_EVERY: u64 = 5;

pub fn line(s: &Snapshot) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-3);
    let mut out = format!(
        "sent {} ({:.0}/s avg), bad {}",
        s.totals.sent,
        s.totals.sent as f64 / secs,
        s.totals.bad()
    );
    if let Some((_, c, lat)) = &s.last_window {
        let avail = c.availability().map_or("-".into(), |a| format!("{a:.4}"));
        let p99 = lat.p99_ms.map_or("-".into(), |p| format!("{p:.1}ms"));
        out.push_str(&format!(
            " | last 1s: {}/s, availability {avail}, p99 {p99}",
            c.sent
        ));
    }
    if s.totals.dropped > 0 || s.totals.late > 0 {
        out.push_str(&format!(
            " | generator late {} dropped {}",
            s.totals.late, s.totals.dropped
        ));
    }
    out
}

pub fn spawn(
    mode: ProgressMode,
    total: Duration,
    mut rx: watch::Receiver<Snapshot>,
) -> JoinHandle<()> {
    let bar = match mode {
        ProgressMode::Bar => true,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
        _ => false,
    };
    tokio::spawn(async move {
        if mode == ProgressMode::Off {
            while rx.changed().await.is_ok() {}
            return;
        }
        let pb = bar.then(|| {
            let pb = ProgressBar::new(total.as_secs().max(1));
            pb.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            pb
        });
        let mut last_plain = 0;
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            match &pb {
                Some(pb) => {
                    pb.set_position(s.elapsed.as_secs());
                    pb.set_message(line(&s));
                }
                None => {
                    let sec = s.elapsed.as_secs();
                    if sec >= last_plain + PLAIN_EVERY {
                        last_plain = sec;
                        eprintln!("[{sec:>5}s/{}s] {}", total.as_secs(), line(&s));
                    }
                }
            }
        }
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
    })
}
