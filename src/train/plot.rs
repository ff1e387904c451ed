//! The loss-curve plot: an SVG drawn with plotters' SVG backend, whose text is plain `<text>`
//! (no font files are read, so the output is the same on every machine and every run).

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::Path;

use crate::config::str_enum;
use crate::error::{Error, Result};

str_enum!(
    /// `--plot-scale`: the loss axis. A log axis shows the late, slow part of a curve that a
    /// linear one flattens against the first steps' losses.
    PlotScale("plot-scale") { Linear => "linear", Log => "log" }
);

const TRAIN: RGBColor = RGBColor(0x7a, 0xa6, 0xd6);
const VAL: RGBColor = RGBColor(0xb0, 0x3a, 0x2e);
const BASELINE: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// The training (light, every loss read back) and validation (dark, with dots) loss curves,
/// with the unigram baseline as a dashed line when there is one; written atomically.
pub fn write_plot(
    path: &Path,
    train: &[(u64, f64)],
    val: &[(u64, f64)],
    baseline: Option<f64>,
    scale: PlotScale,
) -> Result<()> {
    // a log axis cannot show a loss <= 0 (an exact fit of a regression)
    let shown = |v: &f64| v.is_finite() && (scale == PlotScale::Linear || *v > 0.0);
    let keep = |pts: &[(u64, f64)]| pts.iter().copied().filter(|p| shown(&p.1)).collect::<Vec<_>>();
    let (train, val, baseline) = (keep(train), keep(val), baseline.filter(shown));
    let steps = train.iter().chain(&val).map(|p| p.0);
    let (x0, x1) = (steps.clone().min().unwrap_or(0), steps.max().unwrap_or(1));
    let all = train.iter().chain(&val).map(|p| p.1).chain(baseline);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| (a.0.min(v), a.1.max(v)));
    let (lo, hi) = match scale {
        // nothing to show (no finite loss): an empty frame
        _ if lo > hi => (0.1, 1.0),
        PlotScale::Linear => {
            let pad = ((hi - lo) * 0.05).max(1e-6);
            ((lo - pad).max(0.0).min(lo), hi + pad)
        }
        PlotScale::Log => (lo / 1.1, hi * 1.1),
    };
    let x = x0..x1.max(x0 + 1);
    let curves = Curves {
        train: &train,
        val: &val,
        baseline,
        x: (x.start, x.end),
    };
    let mut svg = String::new();
    let drawn = match scale {
        PlotScale::Linear => draw(&mut svg, x, lo..hi, &curves, "loss"),
        PlotScale::Log => {
            let y = (lo..hi).log_scale().with_key_points(log_ticks(lo, hi));
            draw(&mut svg, x, y, &curves, "loss (log scale)")
        }
    };
    drawn.map_err(|e| {
        Error::file(
            path,
            format!("cannot draw the plot: {e}"),
            "this is a bug; please report it",
        )
    })?;
    crate::fsio::write_atomic(path, svg.as_bytes())
}

struct Curves<'a> {
    train: &'a [(u64, f64)],
    val: &'a [(u64, f64)],
    baseline: Option<f64>,
    /// first and last step
    x: (u64, u64),
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw<Y>(svg: &mut String, x: std::ops::Range<u64>, y: Y, c: &Curves, y_desc: &str) -> DrawResult
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let root = SVGBackend::with_string(svg, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("training and validation loss", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc("step")
        .y_desc(y_desc)
        .y_label_formatter(&tick_label)
        .draw()?;
    chart
        .draw_series(LineSeries::new(c.train.iter().copied(), TRAIN.stroke_width(1)))?
        .label("train")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], TRAIN.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(c.val.iter().copied(), VAL.stroke_width(2)).point_size(3))?
        .label("val")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], VAL.stroke_width(2)));
    if let Some(u) = c.baseline {
        let ends = [(c.x.0, u), (c.x.1, u)];
        chart
            .draw_series(DashedLineSeries::new(ends, 6, 4, BASELINE.stroke_width(1)))?
            .label("unigram")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BASELINE.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Ticks for a log axis over [lo, hi]: powers of ten over many decades, 1-2-5 steps over a
/// few; within one decade (the usual late-training view) the round values a linear axis
/// would show, since plotters' own log ticks are powers of the base only.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let mantissas: &[f64] = match decades {
        d if d >= 3.0 => &[1.0],
        d if d >= 1.0 => &[1.0, 2.0, 5.0],
        _ => {
            let raw = (hi - lo) / 8.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .into_iter()
                .find(|m| m * mag >= raw)
                .unwrap_or(10.0)
                * mag;
            let first = (lo / step).ceil() as i64;
            let last = (hi / step).floor() as i64;
            return (first..=last).map(|i| i as f64 * step).collect();
        }
    };
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (k0..=k1)
        .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// A tick value without the float noise of a computed tick (2.4000000000000004).
fn tick_label(v: &f64) -> String {
    if *v == 0.0 || v.abs() >= 1e-3 {
        format!("{}", (v * 1e6).round() / 1e6)
    } else {
        format!("{v:.1e}")
    }
}
