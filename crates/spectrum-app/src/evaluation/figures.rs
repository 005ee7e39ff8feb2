//! Figure series computed once, in Rust, for the PDF (plotters) and the app
//! (ECharts) alike.

use serde::Serialize;
use spectrum_eval::dist::DistItem;
use spectrum_eval::metrics::mean_se;
use spectrum_eval::steer::{CurvePoint, SteerSummary};
use spectrum_eval::valid::Setting;

use spectrum_eval::Family;

use crate::EvalReport;
use crate::evaluation::{TaskRow, ValidOverall};

/// Bins of the JS histograms: JS in nats lies in [0, ln 2], so the edges are
/// fixed and every run's histogram is comparable.
pub const JS_BINS: usize = 12;

/// Item JS divergences counted in [`JS_BINS`] equal bins over [0, ln 2]: over
/// all items, and per task.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct JsHistogram {
    /// The bins' lower edges; each is `width` wide.
    pub edges: Vec<f64>,
    pub width: f64,
    pub all: Vec<usize>,
    pub tasks: Vec<TaskCounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct TaskCounts {
    pub task: String,
    pub counts: Vec<usize>,
}

pub fn js_histogram(items: &[TaskRow<DistItem>]) -> JsHistogram {
    let width = std::f64::consts::LN_2 / JS_BINS as f64;
    let count = |js: &mut dyn Iterator<Item = f64>| {
        let mut counts = vec![0; JS_BINS];
        for x in js.filter(|x| x.is_finite()) {
            counts[((x / width).floor().max(0.0) as usize).min(JS_BINS - 1)] += 1;
        }
        counts
    };
    let mut names: Vec<&str> = items.iter().map(|r| r.task.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    JsHistogram {
        edges: (0..JS_BINS).map(|i| i as f64 * width).collect(),
        width,
        all: count(&mut items.iter().map(|r| r.row.alignment.js)),
        tasks: names
            .into_iter()
            .map(|task| TaskCounts {
                task: task.to_string(),
                counts: count(
                    &mut items
                        .iter()
                        .filter(|r| r.task == task)
                        .map(|r| r.row.alignment.js),
                ),
            })
            .collect(),
    }
}

/// One prompt setting's line through the temperature sweep: (yield, % valid)
/// at each temperature, sorted by temperature.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct FrontierLine {
    pub setting: Setting,
    pub points: Vec<FrontierPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, ts_rs::TS)]
pub struct FrontierPoint {
    pub temperature: f64,
    #[serde(rename = "yield")]
    pub yield_: f64,
    pub percent_valid: f64,
}

/// The validity-diversity frontier of a run, one line per setting that has cells.
pub fn validity_frontier(overall: &[ValidOverall]) -> Vec<FrontierLine> {
    Setting::ALL
        .iter()
        .filter_map(|&setting| {
            let mut points: Vec<FrontierPoint> = overall
                .iter()
                .filter(|o| o.setting == setting)
                .map(|o| FrontierPoint {
                    temperature: o.temperature,
                    yield_: o.yield_,
                    percent_valid: o.percent_valid,
                })
                .collect();
            points.sort_by(|a, b| a.temperature.total_cmp(&b.temperature));
            (!points.is_empty()).then_some(FrontierLine { setting, points })
        })
        .collect()
}

/// The steerability curve over tasks: at each example number j, the mean
/// (equal weight per task) of the tasks' mean loss and accuracy at j, with its
/// standard error over tasks. Only the numbers every task reaches (0..=the
/// smallest k) are kept: averaging whichever tasks reach j would make the
/// curve jump where one task's k ends. Tasks without a curve are left out.
pub fn steer_mean_curve(tasks: &[SteerSummary]) -> Vec<CurvePoint> {
    let curves: Vec<&[CurvePoint]> = tasks
        .iter()
        .map(|t| t.curve.as_slice())
        .filter(|c| !c.is_empty())
        .collect();
    let Some(reach) = curves.iter().map(|c| c.len()).min() else {
        return Vec::new();
    };
    (0..reach)
        .map(|i| {
            let at = |f: fn(&CurvePoint) -> f64| -> Vec<f64> {
                curves.iter().map(|c| f(&c[i])).collect()
            };
            CurvePoint {
                index: curves[0][i].index,
                loss: mean_se(&at(|p| p.loss.mean)),
                acc: mean_se(&at(|p| p.acc.mean)),
            }
        })
        .collect()
}

/// Tasks x runs of one family's headline metric (the task means), the
/// first run being the baseline that the cells are coloured against.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct Heatmap {
    pub family: Family,
    pub metric: String,
    pub lower_is_better: bool,
    /// Every task any run has, in the order the runs list them.
    pub tasks: Vec<String>,
    /// `values[task][run]`; `None` where a run lacks the task.
    pub values: Vec<Vec<Option<f64>>>,
    /// `improvement[task][run]`: how much better the run is than the
    /// baseline (run 0) on the task, signed so that positive is better (what
    /// the app and the PDF colour cells by); `None` where either lacks it.
    pub improvement: Vec<Vec<Option<f64>>>,
}

impl Heatmap {
    pub fn improvement(&self, task: usize, run: usize) -> Option<f64> {
        *self.improvement.get(task)?.get(run)?
    }
}

/// Each value of `row` against its first (the baseline's), signed so that
/// positive is better.
fn improvement_row(row: &[Option<f64>], lower_is_better: bool) -> Vec<Option<f64>> {
    let base = row.first().copied().flatten();
    row.iter()
        .map(|value| {
            let (base, value) = (base?, (*value)?);
            Some(if lower_is_better {
                base - value
            } else {
                value - base
            })
        })
        .collect()
}

/// The headline metric of `family` for every task of `reports`: steerability
/// loss (examples >= 1), JS divergence, or yield with both prompts at T = 1.
pub fn heatmap(reports: &[EvalReport], family: Family) -> Heatmap {
    let task_means = |r: &EvalReport| -> Vec<(String, f64)> {
        match family {
            Family::Steer => r.steer.as_ref().map_or(Vec::new(), |s| {
                s.tasks
                    .iter()
                    .map(|t| (t.task.clone(), t.loss.mean))
                    .collect()
            }),
            Family::Dist => r.dist.as_ref().map_or(Vec::new(), |d| {
                d.tasks
                    .iter()
                    .map(|t| (t.task.clone(), t.js.mean))
                    .collect()
            }),
            Family::Valid => r.valid.as_ref().map_or(Vec::new(), |v| {
                v.tasks
                    .iter()
                    .filter_map(|t| {
                        let c = t
                            .cells
                            .iter()
                            .find(|c| Setting::is_headline(c.setting, c.temperature))?;
                        Some((t.task.clone(), c.stats.yield_ as f64))
                    })
                    .collect()
            }),
        }
    };
    let per_run: Vec<Vec<(String, f64)>> = reports.iter().map(task_means).collect();
    let mut tasks: Vec<String> = Vec::new();
    for (task, _) in per_run.iter().flatten() {
        if !tasks.contains(task) {
            tasks.push(task.clone());
        }
    }
    let values: Vec<Vec<Option<f64>>> = tasks
        .iter()
        .map(|task| {
            per_run
                .iter()
                .map(|run| run.iter().find(|(t, _)| t == task).map(|(_, v)| *v))
                .collect()
        })
        .collect();
    let (metric, lower_is_better) = match family {
        Family::Steer => ("steerability loss (examples >= 1)", true),
        Family::Dist => ("JS divergence", true),
        Family::Valid => ("yield (both prompts, T = 1)", false),
    };
    Heatmap {
        family,
        metric: metric.into(),
        lower_is_better,
        tasks,
        improvement: values
            .iter()
            .map(|row| improvement_row(row, lower_is_better))
            .collect(),
        values,
    }
}

#[cfg(test)]
mod tests {
    use spectrum_eval::metrics::MeanSe;

    use super::*;

    fn task(name: &str, losses: &[f64]) -> SteerSummary {
        let point = |index: usize, loss: f64| CurvePoint {
            index,
            loss: MeanSe {
                mean: loss,
                se: Some(0.1),
                n: 10,
            },
            acc: MeanSe {
                mean: 1.0 / (1.0 + loss),
                se: None,
                n: 10,
            },
        };
        let mut s: SteerSummary = serde_json::from_value(serde_json::json!({
            "task": name, "sequences": 1, "outputs": 1, "k": losses.len().saturating_sub(1),
            "loss": {"mean": 0.0, "se": null, "n": 0}, "acc": {"mean": 0.0, "se": null, "n": 0},
            "curve": []
        }))
        .unwrap_or_else(|e| panic!("summary JSON: {e}"));
        s.curve = losses
            .iter()
            .enumerate()
            .map(|(i, &l)| point(i, l))
            .collect();
        s
    }

    #[test]
    fn the_mean_curve_stops_at_the_smallest_k_and_averages_every_task() {
        let tasks = [
            task("a", &[4.0, 3.0, 2.0]),
            task("b", &[6.0, 5.0, 4.0, 3.0, 2.0]),
            task("c", &[]),
        ];
        let curve = steer_mean_curve(&tasks);
        assert_eq!(curve.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(
            curve.iter().map(|p| p.loss.mean).collect::<Vec<_>>(),
            [5.0, 4.0, 3.0]
        );
        // Standard error over the two task means: |a - b| / 2.
        assert!(
            curve
                .iter()
                .all(|p| p.loss.n == 2 && (p.loss.se.unwrap_or(0.0) - 1.0).abs() < 1e-12)
        );
        assert!(steer_mean_curve(&[]).is_empty());
    }

    #[test]
    fn js_bins_cover_zero_to_ln2_and_count_per_task() {
        let row = |task: &str, js: f64| {
            let mut row = serde_json::from_value::<DistItem>(serde_json::json!({
                "id": "i", "options": ["a"], "target": [1.0], "p": [1.0], "coverage": 1.0,
                "q": [1.0], "js": 0.0, "kl": 0.0, "reverse_kl": 0.0, "tv": 0.0,
                "cross_entropy": 0.0, "mode_match": true, "wasserstein": null,
                "boundary_clean": true
            }))
            .unwrap_or_else(|e| panic!("item JSON: {e}"));
            row.alignment.js = js;
            crate::evaluation::TaskRow {
                task: task.to_string(),
                row,
            }
        };
        let ln2 = std::f64::consts::LN_2;
        let h = js_histogram(&[
            row("b", 0.0),
            row("a", ln2),
            row("b", ln2 / 2.0),
            row("a", f64::NAN),
        ]);
        assert_eq!(h.edges.len(), JS_BINS);
        assert!((h.edges[JS_BINS - 1] + h.width - ln2).abs() < 1e-12);
        // 0 in the first bin, ln 2 (the largest JS) in the last, NaN nowhere.
        assert_eq!(
            (h.all[0], h.all[JS_BINS / 2], h.all[JS_BINS - 1]),
            (1, 1, 1)
        );
        assert_eq!(h.all.iter().sum::<usize>(), 3);
        assert_eq!(
            h.tasks
                .iter()
                .map(|t| (t.task.as_str(), t.counts.iter().sum::<usize>()))
                .collect::<Vec<_>>(),
            [("a", 1), ("b", 2)]
        );
    }
}
