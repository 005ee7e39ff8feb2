//! Distributional alignment: the model's distribution over a task's options
//! against the target (METHOD.md §4.2).

use anyhow::Result;
use serde::Serialize;
use spectrum_eval::dist::{DistItem, DistSummary};
use spectrum_eval::metrics::{Alignment, MeanSe, mean_se};
use spectrum_eval::{EvalError, Evaluator, Family, Progress};
use spectrum_store::Store;
use spectrum_store::records::{self, RowRecord, TaskRecord};

use super::{EvalFamily, mean_se as read_stat, stat};
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

    fn summary_record(s: &DistSummary) -> TaskRecord {
        TaskRecord::Dist(records::DistTask {
            task: s.task.clone(),
            items: s.items,
            js: stat(&s.js),
            kl: stat(&s.kl),
            reverse_kl: stat(&s.reverse_kl),
            tv: stat(&s.tv),
            cross_entropy: stat(&s.cross_entropy),
            mode_match: stat(&s.mode_match),
            coverage: stat(&s.coverage),
            wasserstein: s.wasserstein.as_ref().map(stat),
            unclean_boundaries: s.unclean_boundaries,
        })
    }

    fn row_record(i: &DistItem) -> RowRecord {
        let a = &i.alignment;
        RowRecord::Dist(records::DistRow {
            id: i.id.clone(),
            options: i.options.clone(),
            target: i.target.clone(),
            p: a.p.clone(),
            coverage: a.coverage,
            q: a.q.clone(),
            js: a.js,
            kl: a.kl,
            reverse_kl: a.reverse_kl,
            tv: a.tv,
            cross_entropy: a.cross_entropy,
            mode_match: a.mode_match,
            wasserstein: a.wasserstein,
            boundary_clean: i.boundary_clean,
        })
    }

    fn summary_of(record: &TaskRecord) -> Option<DistSummary> {
        let TaskRecord::Dist(r) = record else {
            return None;
        };
        Some(DistSummary {
            task: r.task.clone(),
            items: r.items,
            js: read_stat(&r.js),
            kl: read_stat(&r.kl),
            reverse_kl: read_stat(&r.reverse_kl),
            tv: read_stat(&r.tv),
            cross_entropy: read_stat(&r.cross_entropy),
            mode_match: read_stat(&r.mode_match),
            coverage: read_stat(&r.coverage),
            wasserstein: r.wasserstein.as_ref().map(read_stat),
            unclean_boundaries: r.unclean_boundaries,
        })
    }

    fn row_of(record: RowRecord) -> Option<DistItem> {
        let RowRecord::Dist(r) = record else {
            return None;
        };
        Some(DistItem {
            id: r.id,
            options: r.options,
            target: r.target,
            alignment: Alignment {
                p: r.p,
                coverage: r.coverage,
                q: r.q,
                js: r.js,
                kl: r.kl,
                reverse_kl: r.reverse_kl,
                tv: r.tv,
                cross_entropy: r.cross_entropy,
                mode_match: r.mode_match,
                wasserstein: r.wasserstein,
            },
            boundary_clean: r.boundary_clean,
        })
    }
}
