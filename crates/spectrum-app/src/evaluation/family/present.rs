//! How the families' report sections write results: numbers in tables, a
//! per-task table, the runs' names and tasks.

use std::collections::BTreeSet;

use spectrum_report::Block;

use crate::EvalReport;

spectrum_core::closed_set! {
    /// What a steerability chart plots.
    ChartMetric { Loss => "loss", Acc => "acc" }
}

/// Each evaluation run as a report names it: name and template.
pub(crate) fn names(evals: &[EvalReport]) -> Vec<String> {
    evals
        .iter()
        .map(|r| format!("{} ({})", r.name, r.template.as_str()))
        .collect()
}

/// The tasks `family` finds in the runs, each once, in order of first appearance.
pub(crate) fn tasks(
    evals: &[EvalReport],
    family: impl Fn(&EvalReport) -> Vec<String>,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in evals {
        for t in family(r) {
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
    }
    out
}

/// `x` with `digits` decimals; `-` when it is not a number.
pub(crate) fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".into()
    }
}

/// A mean ± its standard error.
pub(crate) fn mse(m: &spectrum_eval::metrics::MeanSe, digits: usize) -> String {
    m.text(digits)
}

/// A per-task table under its heading.
pub(crate) fn task_table(
    heading: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
    widths: Vec<f32>,
) -> [Block; 2] {
    [
        Block::Heading(heading.into()),
        Block::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
            widths,
        },
    ]
}
