//! windows.csv: one row per 1 s window, then one per 10 s window (column
//! `width_s` tells them apart). Empty cells where a window had no request.
//!
//! The columns are the fields of [`Row`], in their order: the header is derived from it.

use serde::{Serialize, Serializer};

use crate::recording::WindowRow;
use crate::summary::Summary;

/// A number written with `D` decimals (`{:.D}`), as the CSV has always had them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Fixed<const D: usize>(f64);

impl<const D: usize> Serialize for Fixed<D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:.*}", D, self.0))
    }
}

/// One line of windows.csv. `None` is an empty cell.
#[derive(Debug, Default, Serialize)]
struct Row {
    width_s: u32,
    start_unix: i64,
    offset_s: Fixed<3>,
    sent: u64,
    good: u64,
    bad: u64,
    timeout: u64,
    server_error: u64,
    connection: u64,
    status_4xx: u64,
    unsent: u64,
    late: u64,
    dropped: u64,
    availability: Option<Fixed<6>>,
    p50_ms: Option<Fixed<3>>,
    p90_ms: Option<Fixed<3>>,
    p99_ms: Option<Fixed<3>>,
    p999_ms: Option<Fixed<3>>,
    max_ms: Option<Fixed<3>>,
    status_503: u64,
    status_504: u64,
}

impl From<&WindowRow> for Row {
    fn from(r: &WindowRow) -> Self {
        let c = &r.counts;
        let l = &r.latency;
        Row {
            width_s: r.width_s,
            start_unix: r.start_unix,
            offset_s: Fixed(r.offset_s),
            sent: c.sent,
            good: c.good,
            bad: r.bad,
            timeout: c.timeout,
            server_error: c.server_error,
            connection: c.connection,
            status_4xx: c.status_4xx,
            unsent: c.unsent,
            late: c.late,
            dropped: c.dropped,
            availability: r.availability.map(Fixed),
            p50_ms: l.p50_ms.map(Fixed),
            p90_ms: l.p90_ms.map(Fixed),
            p99_ms: l.p99_ms.map(Fixed),
            p999_ms: l.p999_ms.map(Fixed),
            max_ms: l.max_ms.map(Fixed),
            status_503: c.status_503,
            status_504: c.status_504,
        }
    }
}

/// Header first (written with the first row), then one line per row.
fn to_csv(rows: impl IntoIterator<Item = Row>) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::with_capacity(4096));
    for row in rows {
        // Numbers and empty cells into memory: no I/O to fail, and Row is flat (a nested
        // struct or a map would fail here on every call, which the tests below would see).
        w.serialize(row).expect("a flat row of numbers serializes");
    }
    let bytes = w.into_inner().expect("writing into a Vec cannot fail");
    String::from_utf8(bytes).expect("digits, signs, dots and commas are UTF-8")
}

/// The header line (no newline), derived from [`Row`].
pub fn header() -> String {
    let text = to_csv([Row::default()]);
    text.lines().next().unwrap_or_default().to_owned()
}

pub fn windows_csv(s: &Summary) -> String {
    rows_csv(s.windows_1s.iter().chain(&s.windows_10s))
}

fn rows_csv<'a>(windows: impl Iterator<Item = &'a WindowRow>) -> String {
    let rows: Vec<Row> = windows.map(Row::from).collect();
    if rows.is_empty() {
        // The csv crate writes the header with the first row; a run with no window still gets it.
        return header() + "\n";
    }
    to_csv(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{Counts, LatencyStats};

    const HEADER: &str = "width_s,start_unix,offset_s,sent,good,bad,timeout,server_error,\
        connection,status_4xx,unsent,late,dropped,availability,p50_ms,p90_ms,p99_ms,p999_ms,\
        max_ms,status_503,status_504";

    fn window(width_s: u32, offset_s: f64, counts: Counts, latency: LatencyStats) -> WindowRow {
        WindowRow {
            start_unix: 1_700_000_000 + offset_s as i64,
            width_s,
            offset_s,
            counts,
            bad: counts.bad(),
            availability: counts.availability(),
            latency,
        }
    }

    #[test]
    fn header_lists_every_column_in_order() {
        assert_eq!(header(), HEADER);
    }

    #[test]
    fn rows_keep_their_decimals_and_leave_empty_windows_blank() {
        let busy = Counts {
            sent: 1000,
            good: 993,
            timeout: 5,
            server_error: 2,
            status_4xx: 7,
            status_503: 1,
            status_504: 1,
            unsent: 3,
            late: 4,
            dropped: 6,
            ..Counts::default()
        };
        let latency = LatencyStats {
            count: 995,
            p50_ms: Some(10.0071),
            p90_ms: Some(12.5),
            p99_ms: Some(99.0),
            p999_ms: Some(250.111),
            max_ms: Some(250.2),
            mean_ms: Some(11.0),
        };
        let windows = [
            window(1, 4.0, busy, latency),
            window(1, 5.25, Counts::default(), LatencyStats::default()),
            window(10, 0.0, busy, latency),
        ];
        let text = rows_csv(windows.iter());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                HEADER,
                "1,1700000004,4.000,1000,993,7,5,2,0,7,3,4,6,0.993000,10.007,12.500,99.000,250.111,250.200,1,1",
                "1,1700000005,5.250,0,0,0,0,0,0,0,0,0,0,,,,,,,0,0",
                "10,1700000000,0.000,1000,993,7,5,2,0,7,3,4,6,0.993000,10.007,12.500,99.000,250.111,250.200,1,1",
            ]
        );
        assert!(text.ends_with('\n') && !text.contains('\r'));
    }

    #[test]
    fn no_window_still_gets_the_header() {
        assert_eq!(rows_csv([].iter()), format!("{HEADER}\n"));
    }
}
