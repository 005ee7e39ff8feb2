//! The charts of a report, drawn with plotters on any backend: SVG for the PDF
//! (vector, real text) and PNG for slides. Inputs are plain values
//! ([`Figure`]), so every chart can be drawn from fixed data in tests.
//!
//! Colours: the Okabe-Ito palette (safe for the common colour-vision
//! deficiencies); run `i` of a report has colour `i` in every chart.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use crate::{ReportError, Result};

/// Okabe & Ito (2008): distinguishable with protanopia, deuteranopia and tritanopia.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
];

/// The colour of run `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const TARGET: RGBColor = RGBColor(150, 150, 150);
const FONT: &str = "sans-serif";

/// One point of a curve: x, mean, standard error (0 where unknown).
pub type Point = (f64, f64, f64);

/// A run's series in a chart; `run` indexes [`Figure::runs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub run: usize,
    pub points: Vec<Point>,
}

/// A panel of small multiples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// One distributional item: the target and each run's model distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemBars {
    pub title: String,
    pub options: Vec<String>,
    pub target: Vec<f64>,
    /// (run, q) per run.
    pub models: Vec<(usize, Vec<f64>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chart {
    /// Loss (or accuracy) against the output index, with standard-error bands,
    /// one panel per task, runs overlaid.
    Steer { metric: String, panels: Vec<Panel> },
    /// Model vs target bars, one panel per item.
    Items { items: Vec<ItemBars> },
    /// Items per JS-divergence bin, one bar per run in each bin: bins start at
    /// `edges` and are `width` wide; `runs` holds (run, count per bin).
    JsHistogram {
        edges: Vec<f64>,
        width: f64,
        runs: Vec<(usize, Vec<usize>)>,
    },
    /// Percent valid (y) against yield (x), one line per run through the
    /// temperature sweep; one panel per prompt setting. Points: (yield, valid, temperature).
    Validity { panels: Vec<Panel> },
    /// Tasks x runs, coloured by the difference from the baseline run; values printed.
    Heatmap {
        metric: String,
        lower_is_better: bool,
        tasks: Vec<String>,
        /// values[task][run]
        values: Vec<Vec<Option<f64>>>,
        /// improvement[task][run] over the baseline, positive when better:
        /// what a cell is coloured by (computed by the caller, which knows
        /// the metric).
        improvement: Vec<Vec<Option<f64>>>,
        baseline: usize,
    },
    /// Training loss, held-out loss and learning rate against step.
    Training {
        /// (step, loss, lr)
        steps: Vec<(f64, f64, f64)>,
        /// (step, held-out loss)
        evals: Vec<(f64, f64)>,
    },
}

/// A chart with its title, the runs it shows, and its size in pixels (SVG units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub title: String,
    pub runs: Vec<String>,
    pub chart: Chart,
    pub width: u32,
    pub height: u32,
}

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// Registers the bundled fonts with plotters (once).
pub fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, crate::fonts::SANS);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, crate::fonts::SANS_BOLD);
    });
}

impl Figure {
    /// The figure as an SVG document.
    pub fn svg(&self) -> Result<String> {
        register_fonts();
        let mut out = String::new();
        {
            let root =
                SVGBackend::with_string(&mut out, (self.width, self.height)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(err)?;
        }
        Ok(out)
    }

    /// The figure as a PNG file at `scale` times its size.
    pub fn png(&self, path: &std::path::Path, scale: u32) -> Result<()> {
        register_fonts();
        let size = (self.width * scale, self.height * scale);
        let root = BitMapBackend::new(path, size).into_drawing_area();
        // Draw at the logical size, scaled: lines and text keep their proportions.
        self.draw_scaled(&root, scale as f64)?;
        root.present().map_err(|e| ReportError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        self.draw_scaled(root, 1.0)
    }

    fn draw_scaled<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: f64) -> Result<()> {
        root.fill(&WHITE).map_err(err)?;
        let px = |v: f64| (v * s).round() as i32;
        let title_h = px(28.0);
        root.draw(&Text::new(
            self.title.clone(),
            (px(10.0), px(6.0)),
            (FONT, px(15.0) as f64).into_font().style(FontStyle::Bold),
        ))
        .map_err(err)?;
        // The runs' colours under the title, wrapped into rows (not for training charts).
        let mut legend_h = 0;
        if !(matches!(self.chart, Chart::Training { .. }) || self.runs.is_empty()) {
            let width = root.dim_in_pixel().0 as i32;
            let (mut x, mut y) = (px(10.0), title_h + px(8.0));
            // Item bars draw the target in grey before the runs.
            let target =
                matches!(self.chart, Chart::Items { .. }).then(|| ("target".to_string(), TARGET));
            let entries = target.into_iter().chain(
                self.runs
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), colour(i))),
            );
            for (name, c) in entries {
                let w = px(30.0) + px(6.4 * name.chars().count() as f64);
                if x + w > width && x > px(10.0) {
                    x = px(10.0);
                    y += px(17.0);
                }
                root.draw(&Rectangle::new(
                    [(x, y - px(5.0)), (x + px(14.0), y + px(5.0))],
                    c.filled(),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    name.clone(),
                    (x + px(18.0), y - px(6.0)),
                    (FONT, px(11.0) as f64),
                ))
                .map_err(err)?;
                x += w;
            }
            legend_h = y - title_h + px(12.0);
        }
        let body = root.margin((title_h + legend_h) as u32, 0, 0, 0);
        let ctx = Ctx { s };
        match &self.chart {
            Chart::Steer { metric, panels } => {
                ctx.panels(&body, panels, |area, p| ctx.curve(area, p, metric))
            }
            Chart::Items { items } => ctx.grid(&body, items, |area, item| ctx.bars(area, item)),
            Chart::JsHistogram { edges, width, runs } => ctx.histogram(&body, edges, *width, runs),
            Chart::Validity { panels } => {
                ctx.panels(&body, panels, |area, p| ctx.validity(area, p))
            }
            Chart::Heatmap {
                metric,
                lower_is_better,
                tasks,
                values,
                improvement,
                baseline,
            } => ctx.heatmap(
                &body,
                metric,
                *lower_is_better,
                tasks,
                (values, improvement),
                *baseline,
                &self.runs,
            ),
            Chart::Training { steps, evals } => ctx.training(&body, steps, evals),
        }
    }
}

/// One row of a heatmap's cells (`None`: no value).
type Cells = Vec<Option<f64>>;

/// Drawing helpers at a scale factor.
struct Ctx {
    s: f64,
}

fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 0.5, hi + 0.5);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

impl Ctx {
    fn px(&self, v: f64) -> i32 {
        (v * self.s).round() as i32
    }

    fn font(&self, size: f64) -> TextStyle<'static> {
        (FONT, size * self.s).into_font().into()
    }

    /// Splits `area` into a grid for `n` panels, at most 3 per row.
    fn grid<DB: DrawingBackend, T>(
        &self,
        area: &DrawingArea<DB, Shift>,
        items: &[T],
        mut draw: impl FnMut(&DrawingArea<DB, Shift>, &T) -> Result<()>,
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let cols = items.len().min(3);
        let rows = items.len().div_ceil(cols);
        let cells = area.split_evenly((rows, cols));
        for (cell, item) in cells.iter().zip(items) {
            draw(cell, item)?;
        }
        Ok(())
    }

    fn panels<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panels: &[Panel],
        draw: impl FnMut(&DrawingArea<DB, Shift>, &Panel) -> Result<()>,
    ) -> Result<()> {
        self.grid(area, panels, draw)
    }

    fn curve<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        p: &Panel,
        metric: &str,
    ) -> Result<()> {
        let xs = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
        let (x0, x1) = range(xs, 0.02);
        let ys = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|q| [q.1 - q.2, q.1 + q.2]));
        let (y0, y1) = range(ys, 0.08);
        let mut chart = self.plane(
            area,
            Axes {
                caption: &p.title,
                x: x0..x1,
                y: y0..y1,
                x_desc: "output index (examples in context)",
                y_desc: metric,
                ..Axes::default()
            },
        )?;
        for s in &p.series {
            let c = colour(s.run);
            let mut band: Vec<(f64, f64)> = s.points.iter().map(|q| (q.0, q.1 + q.2)).collect();
            band.extend(s.points.iter().rev().map(|q| (q.0, q.1 - q.2)));
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled())))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().map(|q| (q.0, q.1)),
                    c.stroke_width(self.px(2.0) as u32),
                ))
                .map_err(err)?;
        }
        Ok(())
    }

    fn bars<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        item: &ItemBars,
    ) -> Result<()> {
        let n = item.options.len();
        let groups = item.models.len() + 1;
        let top = item
            .target
            .iter()
            .chain(item.models.iter().flat_map(|m| m.1.iter()))
            .copied()
            .fold(0.0, f64::max)
            .max(0.05)
            * 1.1;
        let mut chart = self.plane(
            area,
            Axes {
                caption: &item.title,
                x: 0.0..n as f64,
                y: 0.0..top,
                y_desc: "probability",
                categories: true,
                ..Axes::default()
            },
        )?;
        // Option names centred under their groups of bars.
        let base = area.get_base_pixel();
        let per = (chart.backend_coord(&(1.0, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0) as f64;
        let chars = ((per / (5.6 * self.s)).floor() as usize).max(3);
        for (i, option) in item.options.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            area.draw(&Text::new(
                shorten(option, chars),
                (x - base.0, y - base.1 + self.px(4.0)),
                self.font(9.0).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
        }
        let width = 0.8 / groups as f64;
        let mut draw = |g: usize, values: &[f64], style: ShapeStyle| -> Result<()> {
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    let x = i as f64 + 0.1 + g as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width * 0.92, v)], style)
                }))
                .map_err(err)?;
            Ok(())
        };
        draw(0, &item.target, TARGET.filled())?;
        for (g, (run, q)) in item.models.iter().enumerate() {
            draw(g + 1, q, colour(*run).filled())?;
        }
        Ok(())
    }

    fn histogram<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        edges: &[f64],
        width: f64,
        runs: &[(usize, Vec<usize>)],
    ) -> Result<()> {
        let top = runs
            .iter()
            .flat_map(|r| r.1.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1) as f64
            * 1.1;
        let x1 = edges.last().map_or(1.0, |e| e + width);
        let mut chart = self.plane(
            area,
            Axes {
                x: 0.0..x1,
                y: 0.0..top,
                x_desc: "JS divergence (nats)",
                y_desc: "items",
                ..Axes::default()
            },
        )?;
        let bar = width * 0.84 / runs.len().max(1) as f64;
        for (g, (run, counts)) in runs.iter().enumerate() {
            let style = colour(*run).filled();
            chart
                .draw_series(edges.iter().zip(counts).map(|(&e, &n)| {
                    let x = e + width * 0.08 + g as f64 * bar;
                    Rectangle::new([(x, 0.0), (x + bar * 0.92, n as f64)], style)
                }))
                .map_err(err)?;
        }
        Ok(())
    }

    fn validity<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<()> {
        let (x0, x1) = range(
            p.series
                .iter()
                .flat_map(|s| s.points.iter().map(|q| q.0))
                .chain([0.0]),
            0.06,
        );
        let mut chart = self.plane(
            area,
            Axes {
                caption: &p.title,
                x: x0..x1,
                y: -0.02..1.02,
                x_desc: "yield (distinct valid outputs)",
                y_desc: "fraction valid",
                ..Axes::default()
            },
        )?;
        for s in &p.series {
            let c = colour(s.run);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().map(|q| (q.0, q.1)),
                    c.stroke_width(self.px(2.0) as u32),
                ))
                .map_err(err)?;
            for q in &s.points {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (q.0, q.1),
                        self.px(3.5) as u32,
                        c.filled(),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("T={}", q.2),
                        (q.0, q.1),
                        self.font(8.0),
                    )))
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn heatmap<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        metric: &str,
        lower_is_better: bool,
        tasks: &[String],
        (values, improvement): (&[Cells], &[Cells]),
        baseline: usize,
        runs: &[String],
    ) -> Result<()> {
        let (w, h) = area.dim_in_pixel();
        let label_w = self.px(150.0);
        let head_h = self.px(34.0);
        let cols = runs.len().max(1) as i32;
        let rows = tasks.len().max(1) as i32;
        let cell_w = ((w as i32 - label_w - self.px(10.0)) / cols).max(1);
        let _ = h;
        let cell_h = self.px(22.0);
        let scale = improvement
            .iter()
            .flatten()
            .flatten()
            .fold(0.0f64, |m, d| m.max(d.abs()))
            .max(1e-12);
        for (j, name) in runs.iter().enumerate() {
            let x = label_w + j as i32 * cell_w;
            area.draw(&Text::new(
                shorten(name, 24),
                (x + self.px(4.0), self.px(4.0)),
                self.font(10.0),
            ))
            .map_err(err)?;
            let note = if j == baseline {
                "(baseline)".to_string()
            } else {
                "minus baseline".to_string()
            };
            area.draw(&Text::new(
                note,
                (x + self.px(4.0), self.px(18.0)),
                self.font(8.5),
            ))
            .map_err(err)?;
        }
        for (i, task) in tasks.iter().enumerate() {
            let y = head_h + i as i32 * cell_h;
            area.draw(&Text::new(
                shorten(task, 26),
                (self.px(4.0), y + cell_h / 2 - self.px(6.0)),
                self.font(10.0),
            ))
            .map_err(err)?;
            for j in 0..runs.len() {
                let x = label_w + j as i32 * cell_w;
                let value = values[i].get(j).copied().flatten();
                let better = improvement
                    .get(i)
                    .and_then(|row| row.get(j))
                    .copied()
                    .flatten();
                let fill = match better {
                    Some(b) if j != baseline => diverging(b / scale),
                    _ => RGBColor(245, 245, 245),
                };
                let base = values[i].get(baseline).copied().flatten();
                let diff = value.zip(base).map(|(v, b)| v - b);
                area.draw(&Rectangle::new(
                    [(x, y), (x + cell_w - 2, y + cell_h - 2)],
                    fill.filled(),
                ))
                .map_err(err)?;
                let text = match (value, diff) {
                    (Some(v), Some(d)) if j != baseline => format!("{v:.3} ({d:+.3})"),
                    (Some(v), _) => format!("{v:.3}"),
                    (None, _) => "-".into(),
                };
                area.draw(&Text::new(
                    text,
                    (x + self.px(6.0), y + cell_h / 2 - self.px(6.0)),
                    self.font(9.5),
                ))
                .map_err(err)?;
            }
        }
        let better = if lower_is_better { "lower" } else { "higher" };
        area.draw(&Text::new(
            format!(
                "{metric} ({better} is better); blue: better than the baseline, vermillion: worse"
            ),
            (self.px(4.0), head_h + rows * cell_h + self.px(6.0)),
            self.font(9.5),
        ))
        .map_err(err)?;
        Ok(())
    }

    fn training<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        steps: &[(f64, f64, f64)],
        evals: &[(f64, f64)],
    ) -> Result<()> {
        let (left, right) = area.split_horizontally((area.dim_in_pixel().0 as f64 * 0.62) as u32);
        let (x0, x1) = range(
            steps.iter().map(|s| s.0).chain(evals.iter().map(|e| e.0)),
            0.02,
        );
        let (y0, y1) = range(
            steps.iter().map(|s| s.1).chain(evals.iter().map(|e| e.1)),
            0.08,
        );
        let mut chart = self.plane(
            &left,
            Axes {
                caption: "loss",
                x: x0..x1,
                y: y0..y1,
                x_desc: "step",
                y_desc: "loss (nats per token / per output)",
                ..Axes::default()
            },
        )?;
        chart
            .draw_series(LineSeries::new(
                steps.iter().map(|s| (s.0, s.1)),
                colour(0).stroke_width(self.px(1.5) as u32),
            ))
            .map_err(err)?
            .label("training loss (per token)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour(0)));
        chart
            .draw_series(LineSeries::new(
                evals.iter().copied(),
                colour(1).stroke_width(self.px(2.0) as u32),
            ))
            .map_err(err)?
            .label("held-out loss (per output, index >= 1)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour(1)));
        chart
            .draw_series(
                evals
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), self.px(3.0) as u32, colour(1).filled())),
            )
            .map_err(err)?;
        chart
            .configure_series_labels()
            .label_font(self.font(9.5))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(err)?;
        let (l0, l1) = range(steps.iter().map(|s| s.2).chain([0.0]), 0.05);
        let mut lr = self.plane(
            &right,
            Axes {
                caption: "learning rate",
                x: x0..x1,
                y: l0..l1,
                x_desc: "step",
                scientific_y: true,
                ..Axes::default()
            },
        )?;
        lr.draw_series(LineSeries::new(
            steps.iter().map(|s| (s.0, s.2)),
            colour(2).stroke_width(self.px(2.0) as u32),
        ))
        .map_err(err)?;
        Ok(())
    }
}

/// How a plane's axes look.
struct Axes<'s> {
    caption: &'s str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_desc: &'s str,
    y_desc: &'s str,
    /// The x axis holds categories: no x grid and no x tick labels (the chart writes its own).
    categories: bool,
    /// y tick labels as 1.0e-3.
    scientific_y: bool,
}

impl Default for Axes<'_> {
    fn default() -> Self {
        Axes {
            caption: "",
            x: 0.0..1.0,
            y: 0.0..1.0,
            x_desc: "",
            y_desc: "",
            categories: false,
            scientific_y: false,
        }
    }
}

type Plane<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

impl Ctx {
    /// A plane with its grid, tick labels and axis descriptions drawn.
    fn plane<'a, DB: DrawingBackend>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        axes: Axes,
    ) -> Result<Plane<'a, DB>> {
        let mut builder = ChartBuilder::on(area);
        if !axes.caption.is_empty() {
            builder.caption(axes.caption, self.font(12.0));
        }
        let x_area = if axes.categories && axes.x_desc.is_empty() {
            30.0
        } else {
            32.0
        };
        let mut chart = builder
            .margin(self.px(6.0))
            .x_label_area_size(self.px(x_area))
            .y_label_area_size(self.px(if axes.scientific_y { 52.0 } else { 44.0 }))
            .build_cartesian_2d(axes.x, axes.y)
            .map_err(err)?;
        let blank = |_: &f64| String::new();
        let scientific = |v: &f64| {
            if v.abs() < 1e-12 {
                "0".to_string()
            } else {
                format!("{v:.1e}")
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(235, 235, 235))
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .label_style(self.font(10.0))
            .axis_desc_style(self.font(10.0))
            .x_labels(6)
            .y_labels(6);
        if axes.categories {
            mesh.disable_x_mesh().x_label_formatter(&blank);
        }
        if axes.scientific_y {
            mesh.y_label_formatter(&scientific);
        }
        mesh.draw().map_err(err)?;
        Ok(chart)
    }
}

/// Blue (t = 1, better) through white to vermillion (t = -1, worse).
fn diverging(t: f64) -> RGBColor {
    let t = t.clamp(-1.0, 1.0);
    let (end, a) = if t >= 0.0 {
        (PALETTE[0], t)
    } else {
        (PALETTE[1], -t)
    };
    let a = a * 0.75;
    let mix = |c: u8| (255.0 + (c as f64 - 255.0) * a).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// `text` cut to `n` characters with an ellipsis.
pub fn shorten(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(n.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}
