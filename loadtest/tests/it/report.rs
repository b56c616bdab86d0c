//! The HTML report draws its charts from the data, and the CSV holds the rows.

use loadtest::flip::FlipReport;
use loadtest::report::{self, csv, html};
use loadtest::summary::{self, Parts};

use crate::synthetic::{T0, run_info, ten_seconds};

fn points(html: &str, series: &str) -> usize {
    let tag = format!("data-series=\"{series}\"");
    let start = html
        .find(&tag)
        .unwrap_or_else(|| panic!("no {series} series"));
    let pts = &html[start..];
    let pts = &pts[pts.find("points=\"").unwrap() + 8..];
    pts[..pts.find('"').unwrap()].split(' ').count()
}

/// SVG y coordinates (larger = lower on the chart) of a series' points.
fn polyline_ys(html: &str, series: &str) -> Vec<f64> {
    let tag = format!("data-series=\"{series}\"");
    let pts = &html[html.find(&tag).unwrap()..];
    let pts = &pts[pts.find("points=\"").unwrap() + 8..];
    pts[..pts.find('"').unwrap()]
        .split(' ')
        .map(|p| p.split_once(',').unwrap().1.parse().unwrap())
        .collect()
}

#[test]
fn html_contains_the_series_dips_and_flip() {
    let rec = ten_seconds();
    let flip = FlipReport {
        at_unix_us: (T0 + 6) * 1_000_000 + 500_000,
        at: String::new(),
        offset_s: 6.5,
        to: "fixed".into(),
        status: Some(200),
        ok: true,
        error: None,
        response: None,
        cache_before: Some(serde_json::json!({"mode": "leaky", "nodes": 123456})),
        before: None,
        after: None,
    };
    let s = summary::build(
        &rec,
        Parts {
            runs: vec![run_info(T0, 10, 1000.0)],
            quota_ms: 250.0,
            slo: 0.999,
            jaeger_url: "http://jaeger:16686".into(),
            slowest: vec![],
            failed: vec![],
            flip: Some(flip),
        },
    )
    .unwrap();
    // Flip halves: seconds 0..6 before, 7..10 after (second 6 holds the flip).
    let f = s.flip.as_ref().unwrap();
    assert_eq!(f.before.as_ref().unwrap().seconds, 6);
    assert_eq!(f.before.as_ref().unwrap().counts.timeout, 5);
    assert_eq!(f.after.as_ref().unwrap().seconds, 3);
    assert_eq!(f.after.as_ref().unwrap().counts.server_error, 1);

    let page = html::report_html(&s);
    assert_eq!(points(&page, "availability"), 10);
    assert_eq!(points(&page, "p99"), 10);
    assert_eq!(points(&page, "sent"), 10);
    // The dip second sits lower on the availability line than its neighbours.
    let ys = polyline_ys(&page, "availability");
    assert!(ys[4] > ys[3] && ys[4] > ys[5], "{ys:?}");
    assert!(page.contains("id=\"chart-bad\""));
    assert!(page.contains("data-series=\"timeout\""));
    assert_eq!(
        page.matches("class=\"dip\"").count(),
        4,
        "one dip shaded in each chart"
    );
    assert_eq!(
        page.matches("class=\"flip\"").count(),
        4,
        "flip marked in each chart"
    );
    assert!(page.contains("SLO 0.999") && page.contains("quota 250 ms"));
    assert!(page.contains("123456"), "cache stats at the flip");
    // The embedded data carries every window.
    let data_start = page.find("id=\"loadtest-data\">").unwrap();
    let data = &page[data_start..];
    for sec in 0..10 {
        assert!(data.contains(&format!("\"start_unix\":{}", T0 + sec)));
    }
    assert!(
        !page.contains("http://") || !page.contains("<script src"),
        "no external scripts"
    );

    let text = csv::windows_csv(&s);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], csv::header());
    assert_eq!(lines.len(), 1 + 10 + 1);
    assert!(
        lines[5].starts_with(&format!(
            "1,{},4.000,1000,995,5,5,0,0,0,0,0,0,0.995000,",
            T0 + 4
        )),
        "{}",
        lines[5]
    );
    assert!(lines[11].starts_with(&format!("10,{T0},")));
    let _ = report::REPORT_FILE;
}

#[test]
fn html_escapes_what_it_splices() {
    let mut s = crate::synthetic::build(&ten_seconds(), vec![run_info(T0, 10, 1000.0)]);
    s.verdict.reasons.push("<script>a & \"b\"</script>".into());
    s.runs[0].target = "http://h/?a=1&b=<2>".into();
    let page = html::report_html(&s);
    assert!(page.contains("<li>&lt;script&gt;a &amp; &quot;b&quot;&lt;/script&gt;</li>"));
    assert!(page.contains("<code>http://h/?a=1&amp;b=&lt;2&gt;</code>"));
    assert!(!page.contains("<script>a"));
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the JSON data block"
    );
}
