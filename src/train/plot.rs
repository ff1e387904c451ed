//! The loss-curve plot.

use std::path::Path;

use crate::error::Result;

/// A hand-written SVG of the training (light, raw) and validation (dark, dots) loss curves,
/// with the unigram baseline as a dashed line when there is one.
pub fn write_plot(path: &Path, train: &[(u64, f64)], val: &[(u64, f64)], baseline: Option<f64>) -> Result<()> {
    let (w, h, pad) = (640.0, 400.0, 50.0);
    let all = train.iter().chain(val).map(|p| p.1).chain(baseline);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| (a.0.min(v), a.1.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let max_step = train.iter().chain(val).map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let min_step = train.iter().chain(val).map(|p| p.0).min().unwrap_or(0) as f64;
    let span = (max_step - min_step).max(1.0);
    let x = |s: u64| pad + (s as f64 - min_step) / span * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad);
    let line = |pts: &[(u64, f64)]| {
        pts.iter()
            .map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"{pad}\" y=\"{ty}\">step {min_step:.0}</text><text x=\"{rx}\" y=\"{ty}\">step {max_step:.0}</text>\n\
         <text x=\"5\" y=\"{pad}\">{hi:.3}</text><text x=\"5\" y=\"{b}\">{lo:.3}</text>\n\
         <text x=\"{lx}\" y=\"20\" fill=\"#7aa6d6\">train</text><text x=\"{lx2}\" y=\"20\" fill=\"#b03a2e\">val</text>\n",
        b = h - pad,
        r = w - pad,
        ty = h - pad + 20.0,
        rx = w - pad - 60.0,
        lx = w - 160.0,
        lx2 = w - 110.0,
    );
    if let Some(u) = baseline {
        svg += &format!(
            "<line x1=\"{pad}\" y1=\"{yu:.1}\" x2=\"{r}\" y2=\"{yu:.1}\" stroke=\"gray\" stroke-dasharray=\"4 4\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" fill=\"gray\">unigram</text>\n",
            yu = y(u),
            r = w - pad,
            tx = w - pad - 50.0,
            ty = y(u) - 4.0
        );
    }
    svg += &format!(
        "<polyline fill=\"none\" stroke=\"#7aa6d6\" points=\"{}\"/>\n",
        line(train)
    );
    svg += &format!(
        "<polyline fill=\"none\" stroke=\"#b03a2e\" stroke-width=\"2\" points=\"{}\"/>\n",
        line(val)
    );
    for &(s, v) in val {
        svg += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#b03a2e\"/>\n",
            x(s),
            y(v)
        );
    }
    svg += "</svg>\n";
    crate::fsio::write_atomic(path, svg.as_bytes())
}
