//! Hand-built SVG charts: no plotting crate, no fonts, no scripts; the data
//! points are written straight into the markup so the report opens offline.

use std::fmt::Write;

/// How values map to the vertical axis.
#[derive(Clone, Copy)]
pub enum Scale {
    Linear,
    Log10,
    /// Availability as "nines": -log10(1 - a), capped at `NINES_CAP`, so
    /// 0.99 / 0.999 / 0.9999 are evenly spaced and a dip stays readable.
    Nines,
}

pub const NINES_CAP: f64 = 5.0;

impl Scale {
    pub fn map(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log10 => v.max(1e-6).log10(),
            Scale::Nines => (-(1.0 - v).max(10f64.powf(-NINES_CAP)).log10()).max(0.0),
        }
    }
}

pub struct Axis {
    pub title: String,
    pub x_range: (f64, f64),
    /// In data units (before `scale`).
    pub y_range: (f64, f64),
    pub scale: Scale,
    pub y_ticks: Vec<(f64, String)>,
    pub y_label: String,
}

pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, Option<f64>)>,
}

pub struct Marks {
    /// Shaded x intervals (dips).
    pub bands: Vec<(f64, f64)>,
    /// Vertical markers (the flip).
    pub vlines: Vec<(f64, String)>,
    /// Horizontal references (SLO, quota), in data units.
    pub hlines: Vec<(f64, String)>,
}

const W: f64 = 960.0;
const H: f64 = 280.0;
const L: f64 = 70.0;
const R: f64 = 20.0;
const T: f64 = 28.0;
const B: f64 = 50.0;

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    scale: Scale,
}

impl Frame {
    fn new(a: &Axis) -> Self {
        let (x0, mut x1) = a.x_range;
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let (mut y0, mut y1) = (a.scale.map(a.y_range.0), a.scale.map(a.y_range.1));
        if y1 <= y0 {
            y1 = y0 + 1.0;
            y0 -= 0.0;
        }
        Frame {
            x0,
            x1,
            y0,
            y1,
            scale: a.scale,
        }
    }
    fn x(&self, v: f64) -> f64 {
        L + (v - self.x0) / (self.x1 - self.x0) * (W - L - R)
    }
    fn y(&self, v: f64) -> f64 {
        let m = self.scale.map(v).clamp(self.y0, self.y1);
        T + (1.0 - (m - self.y0) / (self.y1 - self.y0)) * (H - T - B)
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn open(a: &Axis, f: &Frame, id: &str) -> String {
    let mut s = format!(
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img"><title>{}</title>"#,
        esc(&a.title)
    );
    let _ = write!(
        s,
        r#"<text x="{L}" y="16" class="t">{}</text>"#,
        esc(&a.title)
    );
    let _ = write!(
        s,
        r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - L - R,
        H - T - B
    );
    for (v, label) in &a.y_ticks {
        let y = f.y(*v);
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" class="yt">{}</text>"##,
            W - R,
            L - 4.0,
            y + 4.0,
            esc(label)
        );
    }
    let span = f.x1 - f.x0;
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|st| span / st <= 12.0)
    .unwrap_or(7200.0);
    let mut t = (f.x0 / step).ceil() * step;
    while t <= f.x1 + 1e-9 {
        let x = f.x(t);
        // -0.0 == 0.0: the first tick of a run starting mid-second reads "0s", not "-0s".
        let label = if t == 0.0 { 0.0 } else { t };
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{}" class="xt">{label}s</text>"#,
            H - B + 16.0
        );
        t += step;
    }
    let _ = write!(
        s,
        r#"<text x="14" y="{}" class="yl" transform="rotate(-90 14 {})">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(&a.y_label)
    );
    s
}

fn marks(s: &mut String, f: &Frame, m: &Marks) {
    for (a, b) in &m.bands {
        let (xa, xb) = (f.x(*a), f.x(*b));
        let _ = write!(
            s,
            r##"<rect class="dip" x="{xa:.1}" y="{T}" width="{:.1}" height="{}" fill="#f44" fill-opacity="0.15"/>"##,
            (xb - xa).max(1.0),
            H - T - B
        );
    }
    for (v, label) in &m.hlines {
        let y = f.y(*v);
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" class="ref">{}</text>"##,
            W - R,
            W - R - 4.0,
            y - 4.0,
            esc(label)
        );
    }
    for (v, label) in &m.vlines {
        let x = f.x(*v);
        let _ = write!(
            s,
            r##"<line class="flip" x1="{x:.1}" x2="{x:.1}" y1="{T}" y2="{}" stroke="#06c" stroke-width="2"/><text x="{:.1}" y="{}" class="ref">{}</text>"##,
            H - B,
            x + 4.0,
            T + 12.0,
            esc(label)
        );
    }
}

/// Lines with gaps where a value is missing.
pub fn line_chart(id: &str, a: &Axis, series: &[Series], m: &Marks) -> String {
    let f = Frame::new(a);
    let mut s = open(a, &f, id);
    marks(&mut s, &f, m);
    for (i, ser) in series.iter().enumerate() {
        let mut runs: Vec<Vec<String>> = vec![Vec::new()];
        for (x, y) in &ser.points {
            match y {
                Some(y) => runs.last_mut().expect("non-empty").push(format!(
                    "{:.1},{:.1}",
                    f.x(*x),
                    f.y(*y)
                )),
                None if !runs.last().expect("non-empty").is_empty() => runs.push(Vec::new()),
                None => {}
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            if run.len() == 1 {
                let (cx, cy) = run[0].split_once(',').expect("x,y");
                let _ = write!(
                    s,
                    r#"<circle cx="{cx}" cy="{cy}" r="2" fill="{}"/>"#,
                    ser.color
                );
            } else {
                let _ = write!(
                    s,
                    r#"<polyline data-series="{}" fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                    esc(ser.name),
                    ser.color,
                    run.join(" ")
                );
            }
        }
        let lx = L + 10.0 + 110.0 * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="lg">{}</text>"#,
            H - 14.0,
            ser.color,
            lx + 14.0,
            H - 5.0,
            esc(ser.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Stacked bars, one per x (window start), `width` wide in x units.
pub fn stacked_bars(
    id: &str,
    a: &Axis,
    x: &[f64],
    width: f64,
    stacks: &[Series],
    m: &Marks,
) -> String {
    let f = Frame::new(a);
    let mut s = open(a, &f, id);
    marks(&mut s, &f, m);
    let mut base = vec![0.0; x.len()];
    for (i, st) in stacks.iter().enumerate() {
        let _ = write!(
            s,
            r#"<g data-series="{}" fill="{}">"#,
            esc(st.name),
            st.color
        );
        for (j, (xv, v)) in st.points.iter().enumerate() {
            let v = v.unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let (y_top, y_bot) = (f.y(base[j] + v), f.y(base[j]));
            base[j] += v;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{y_top:.1}" width="{:.1}" height="{:.1}"><title>{xv}s: {v}</title></rect>"#,
                f.x(*xv),
                (f.x(xv + width) - f.x(*xv)).max(1.0),
                (y_bot - y_top).max(0.5)
            );
        }
        s.push_str("</g>");
        let lx = L + 10.0 + 130.0 * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="lg">{}</text>"#,
            H - 14.0,
            st.color,
            lx + 14.0,
            H - 5.0,
            esc(st.name)
        );
    }
    let _ = x;
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_tick_has_no_sign_and_nines_scale_orders_availability() {
        let a = Axis {
            title: "t".into(),
            x_range: (-0.4, 3.0),
            y_range: (0.0, 1.0),
            scale: Scale::Linear,
            y_ticks: vec![],
            y_label: "y".into(),
        };
        let svg = line_chart(
            "c",
            &a,
            &[],
            &Marks {
                bands: vec![],
                vlines: vec![],
                hlines: vec![],
            },
        );
        assert!(svg.contains(">0s<") && !svg.contains("-0s"), "{svg}");
        let n = |v| Scale::Nines.map(v);
        assert!(n(0.9) < n(0.99) && n(0.99) < n(0.999) && n(1.0) == NINES_CAP);
        assert!((n(0.999) - 3.0).abs() < 1e-9);
    }
}
