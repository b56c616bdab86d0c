//! Exit status: 0 SLO met, 1 missed, 2 usage/setup errors.

use axum::Router;
use axum::http::StatusCode;
use loadtest::cli::run_cli;
use loadtest::{EXIT_OK, EXIT_SLO_MISSED, EXIT_USAGE};

use crate::helpers::{self, tempdir};

async fn cli(args: &[&str]) -> u8 {
    let mut full = vec!["loadtest"];
    full.extend_from_slice(args);
    run_cli(full).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_when_the_slo_is_met_one_when_missed() {
    let ok = helpers::spawn(helpers::ok_app()).await;
    let broken =
        helpers::spawn(Router::new().fallback(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .await;
    let out = tempdir("exit-ok");
    let o = out.to_str().unwrap();
    let base = [
        "run",
        "--rate",
        "100",
        "--duration",
        "1s",
        "--progress",
        "off",
        "--out",
        o,
    ];
    let with = |t: &str| {
        let mut v = base.to_vec();
        v.extend(["--target", t]);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let code = cli(&with(&ok).iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, EXIT_OK);
    for f in [
        "summary.json",
        "windows.csv",
        "histograms.json",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let code = cli(&with(&broken).iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, EXIT_SLO_MISSED);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["totals"]["server_error"], 100);
    assert_eq!(s["verdict"]["outcome"], "fail");
    // The failures are listed with their trace ids and links.
    let failed = s["traces"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 20);
    assert!(
        failed[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://localhost:16686/trace/")
    );
}

#[tokio::test]
async fn two_on_bad_input_or_setup() {
    let bad: &[&[&str]] = &[
        &["run"],
        &[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "abc",
            "--duration",
            "1s",
        ],
        &["run", "--target", "http://127.0.0.1:1", "--rate", "10"],
        &[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "-5",
            "--duration",
            "1s",
        ],
        &[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--slo",
            "2",
        ],
        &[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--stages",
            "30s",
            "--progress",
            "off",
        ],
        &[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--stages",
            "1s:5",
        ],
        &[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--flip-at",
            "2s",
            "--admin-token",
            "t",
        ],
        &[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--duration",
            "2s",
            "--flip-at",
            "1s",
            // An empty token counts as none, so an ADMIN_TOKEN in the
            // environment of the test run cannot satisfy this case.
            "--admin-token",
            "",
        ],
        &[
            "run",
            "--target",
            "https://127.0.0.1:1",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--progress",
            "off",
        ],
        &[
            "run",
            "--target",
            "not a url",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--progress",
            "off",
        ],
        &["merge"],
        &["merge", "/nonexistent/loadtest-run"],
        &["frobnicate"],
    ];
    for args in bad {
        let mut a = args.to_vec();
        if args[0] == "run" {
            a.extend(["--out", "/tmp/loadtest-it-never-written"]);
        }
        assert_eq!(cli(&a).await, EXIT_USAGE, "{args:?}");
    }
}

#[test]
fn the_binary_exits_two_on_usage_errors_and_zero_on_help() {
    let bin = env!("CARGO_BIN_EXE_loadtest");
    let st = std::process::Command::new(bin)
        .args(["run", "--rate", "x"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    let help = std::process::Command::new(bin)
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--target",
        "--rate",
        "--duration",
        "--stages",
        "--scenario",
        "--quota",
        "--slo",
        "--connections",
        "--seed",
        "--out",
        "--jaeger-url",
        "--trace-sample",
        "--flip-at",
        "--flip-to",
        "--admin-token",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_on_the_command_line_combines_two_generators() {
    let ok = helpers::spawn(helpers::ok_app()).await;
    let (a, b, out) = (
        tempdir("cli-merge-a"),
        tempdir("cli-merge-b"),
        tempdir("cli-merge-out"),
    );
    let run = |dir: &std::path::Path, seed: &str| {
        let d = dir.to_str().unwrap().to_string();
        let (ok, seed) = (ok.clone(), seed.to_string());
        async move {
            cli(&[
                "run",
                "--target",
                &ok,
                "--rate",
                "50",
                "--duration",
                "1s",
                "--progress",
                "off",
                "--seed",
                &seed,
                "--out",
                &d,
            ])
            .await
        }
    };
    // Two generators at the same time, as from two machines.
    let (ca, cb) = tokio::join!(run(&a, "1"), run(&b, "2"));
    assert_eq!((ca, cb), (EXIT_OK, EXIT_OK));
    let code = cli(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, EXIT_OK);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["runs"].as_array().unwrap().len(), 2);
    assert_eq!(s["totals"]["sent"], 100);
    let per_second: u64 = s["windows_1s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, 100);
    assert!(out.join("report.html").is_file() && out.join("windows.csv").is_file());
}
