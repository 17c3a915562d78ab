//! The chart: one SKU's pool and each channel's shown quantity over time, as SVG.
//!
//! Drawn with plotters' SVG backend only (no bitmap backend, no system fonts), so the
//! build needs nothing from the system and the file is text that diffs. Text is laid out
//! with plotters' built-in metrics and rendered by the viewer's default sans-serif font.

use crate::strategy::Strategy;
use crate::Report;
use anyhow::{anyhow, Context};
use plotters::prelude::*;

/// Chart size in pixels.
const WIDTH: u32 = 960;
const HEIGHT: u32 = 480;

/// Line colours: the pool first, then one per channel (cycled past eight channels).
const COLOURS: [RGBColor; 9] = [
    RGBColor(0, 0, 0),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The SVG of `strategy`'s run in `report`.
pub fn svg(report: &Report, strategy: Strategy) -> anyhow::Result<String> {
    let run = report.run(strategy).with_context(|| format!("strategy {strategy} was not run"))?;
    let days = f64::from(report.days.max(1));
    let y_max = run.timeline.iter().flat_map(|s| s.shown.iter().copied().chain([s.pool])).max().unwrap_or(0).max(1);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("drawing the chart: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{}: {} under {}", report.scenario, report.chart_sku, strategy), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..days, 0i64..(y_max + y_max / 10 + 1))
            .map_err(|e| anyhow!("drawing the chart: {e}"))?;
        chart.configure_mesh().x_desc("day").y_desc("units").draw().map_err(|e| anyhow!("drawing the chart: {e}"))?;
        let day = |at: i64| at as f64 / crate::scenario::DAY_MS as f64;
        let mut series: Vec<(String, Vec<(f64, i64)>)> =
            vec![("pool (sellable)".to_string(), run.timeline.iter().map(|s| (day(s.at), s.pool)).collect())];
        for (c, name) in report.channels.iter().enumerate() {
            series.push((format!("{name} shows"), run.timeline.iter().map(|s| (day(s.at), s.shown[c])).collect()));
        }
        for (i, (name, points)) in series.into_iter().enumerate() {
            let colour = COLOURS[if i == 0 { 0 } else { 1 + (i - 1) % (COLOURS.len() - 1) }];
            let width = if i == 0 { 3 } else { 1 };
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(width)))
                .map_err(|e| anyhow!("drawing the chart: {e}"))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("drawing the chart: {e}"))?;
        root.present().map_err(|e| anyhow!("drawing the chart: {e}"))?;
    }
    Ok(out)
}
