//! Distributional alignment: the model's distribution over a task's options
//! against the target (METHOD.md §4.2).

use anyhow::Result;
use serde::Serialize;
use spectrum_eval::dist::{DistItem, DistSummary};
use spectrum_eval::metrics::{MeanSe, mean_se};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::Store;

use super::EvalFamily;
use crate::evaluation::TaskRow;

pub(crate) struct Dist;

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct DistReport {
    /// Means over tasks (equal weight).
    pub js: MeanSe,
    pub tv: MeanSe,
    pub coverage: MeanSe,
    pub tasks: Vec<DistSummary>,
    /// Every item, with its task.
    pub items: Vec<TaskRow<DistItem>>,
    /// The items' JS divergences, binned ([`crate::figures::js_histogram`]).
    pub js_histogram: crate::figures::JsHistogram,
}

impl EvalFamily for Dist {
    const FAMILY: Family = Family::Dist;
    type Summary = DistSummary;
    type Row = DistItem;
    type Input = Vec<spectrum_suite::DistributionItem>;
    type Report = DistReport;

    fn input(store: &Store, task_id: i64, _: &mut dyn FnMut(&str)) -> Result<Option<Self::Input>> {
        Ok(Some(store.task_distribution_items(task_id)?))
    }

    fn evaluate(
        ev: &mut Evaluator,
        task: &str,
        input: &Self::Input,
        progress: Progress,
    ) -> Result<(Self::Summary, Vec<Self::Row>), EvalError> {
        spectrum_eval::dist::evaluate(ev, task, input, progress).map(|r| (r.summary, r.items))
    }

    fn aggregate(tasks: Vec<DistSummary>, items: Vec<TaskRow<DistItem>>) -> DistReport {
        let over = |f: fn(&DistSummary) -> f64| mean_se(&tasks.iter().map(f).collect::<Vec<_>>());
        DistReport {
            js: over(|s| s.js.mean),
            tv: over(|s| s.tv.mean),
            coverage: over(|s| s.coverage.mean),
            js_histogram: crate::figures::js_histogram(&items),
            tasks,
            items,
        }
    }
}
