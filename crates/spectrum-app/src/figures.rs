//! Figure series computed once, in Rust, for the PDF (plotters) and the app
//! (ECharts) alike.

use spectrum_eval::metrics::mean_se;
use spectrum_eval::steer::{CurvePoint, SteerSummary};

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
}
