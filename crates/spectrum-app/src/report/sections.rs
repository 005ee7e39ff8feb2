//! The report's sections and the blocks they are made of.

use std::collections::BTreeSet;

use anyhow::Result;
use spectrum_eval::Family;
use spectrum_lm::template;
use spectrum_report::{Block, Chart, Section};

use super::figures::*;
use super::{ReportRequest, Runs};
use crate::evaluation::family::{Dist, EvalFamily, Steer, Valid};
use crate::{RunRef, Studio};

impl Studio {
    /// The means of every run and, with a baseline, the comparison against it.
    pub(super) fn summary_section(&self, runs: &Runs) -> Result<Section> {
        let names = runs.names();
        let rows = runs
            .evals
            .iter()
            .zip(&names)
            .map(|(r, name)| {
                let mut row = vec![name.clone()];
                row.extend(Steer::headline(Steer::of(r)));
                row.extend(Dist::headline(Dist::of(r)));
                row.extend(Valid::headline(Valid::of(r)));
                row
            })
            .collect();
        let columns: Vec<(&str, f32)> = [("run", 0.36)]
            .into_iter()
            .chain(Steer::HEADLINE.iter().copied())
            .chain(Dist::HEADLINE.iter().copied())
            .chain(Valid::HEADLINE.iter().copied())
            .collect();
        let mut blocks = vec![
            Block::Text("Means over tasks with equal weight; ± is the standard error over tasks. Steerability: loss (nats) and token accuracy of examples 1..k, numbered as the reference numbers them (contiguous loss runs). Distributional: JS divergence (natural log) and mass on the valid options. Validity: fraction valid / yield (distinct valid outputs) with description and examples in the prompt, temperature 1.".into()),
            Block::Table {
                header: columns.iter().map(|(h, _)| h.to_string()).collect(),
                rows,
                widths: columns.iter().map(|(_, w)| *w).collect(),
            },
        ];
        if runs.evals.len() > 1 {
            let ids: Vec<RunRef> = runs.evals.iter().map(|r| RunRef::Id(r.run)).collect();
            let cmp = self.compare(&ids)?;
            blocks.extend(comparison_blocks(&cmp, &names));
        }
        Ok(Section {
            title: "Summary".into(),
            blocks,
        })
    }

    /// Per-task heatmaps against the baseline.
    pub(super) fn tasks_section(runs: &Runs) -> Result<Section> {
        let names = runs.names();
        let mut blocks = Vec::new();
        for family in Family::ALL {
            let fig = heatmap_figure(runs, *family);
            if matches!(&fig.chart, Chart::Heatmap { tasks, .. } if tasks.is_empty()) {
                continue;
            }
            blocks.push(Block::Figure {
                svg: fig.svg()?,
                caption: format!("Differences from the baseline, {}.", names[0]),
            });
        }
        Ok(Section {
            title: "Task breakdown".into(),
            blocks,
        })
    }

    /// The training curves of every training run.
    pub(super) fn training_section(runs: &Runs) -> Result<Section> {
        let mut blocks = Vec::new();
        for t in &runs.trains {
            blocks.push(Block::Figure { svg: training_figure(t).svg()?, caption: "Training loss is per loss token; the held-out loss is per output with index >= 1.".into() });
        }
        Ok(Section {
            title: "Training".into(),
            blocks,
        })
    }

    /// How each run's template renders a short sequence.
    pub(super) fn templates_section(runs: &Runs) -> Result<Section> {
        let mut blocks = vec![Block::Text("How each run's prompts look: a short sequence rendered by the run's template with its model's tokenizer. Text in [[ ]] carries loss (is scored). The chat template adds this system prompt:".into()), Block::Code(template::CHAT_SYSTEM_PROMPT.into())];
        let mut done = BTreeSet::new();
        for r in &runs.evals {
            if !done.insert((r.model_path.clone(), format!("{:?}", r.template))) {
                continue;
            }
            blocks.push(Block::Heading(format!(
                "{} with the {} template",
                r.model,
                r.template.as_str()
            )));
            match rendered_example(r) {
                Ok(text) => blocks.push(Block::Code(text)),
                Err(e) => blocks.push(Block::Text(format!("(not available: {e:#})"))),
            }
        }
        Ok(Section {
            title: "Prompt templates".into(),
            blocks,
        })
    }

    /// Every run's full spec.
    pub(super) fn appendix_section(&self, request: &ReportRequest) -> Result<Section> {
        let store = self.store()?;
        let mut blocks = Vec::new();
        for r in request.runs.iter() {
            let run = crate::runs::find_run(&store, r)?;
            blocks.push(Block::Heading(format!(
                "Run {} ({}), {}",
                run.id, run.name, run.kind
            )));
            let settings = crate::RunSettings::of(&run)?;
            blocks.push(Block::Code(serde_json::to_string_pretty(&settings)?));
        }
        Ok(Section {
            title: "Appendix: run specifications".into(),
            blocks,
        })
    }
}

/// The comparison against the baseline: win/tie/loss per family, then each
/// run's headline differences with their intervals.
fn comparison_blocks(cmp: &crate::Comparison, names: &[String]) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(format!(
        "Against the baseline, {}",
        names[0]
    ))];
    blocks.push(Block::Text("Differences are run minus baseline with 95% bootstrap intervals (paired on sequences and items). A task is a win when the whole interval lies on the better side of zero.".into()));
    let mut rows = Vec::new();
    for c in &cmp.candidates {
        for (family, t) in &c.tally {
            rows.push(vec![
                format!("{} ({})", c.run.name, c.run.template.as_str()),
                family.as_str().to_string(),
                t.win.to_string(),
                t.tie.to_string(),
                t.loss.to_string(),
            ]);
        }
    }
    blocks.push(Block::Table {
        header: ["run", "family", "wins", "ties", "losses"]
            .map(String::from)
            .to_vec(),
        rows,
        widths: vec![0.46, 0.14, 0.13, 0.13, 0.14],
    });
    for c in &cmp.candidates {
        blocks.push(Block::Heading(format!(
            "{} ({}) minus the baseline",
            c.run.name,
            c.run.template.as_str()
        )));
        let rows = c
            .rows
            .iter()
            .filter(|r| r.headline)
            .map(|r| {
                vec![
                    r.family.as_str().to_string(),
                    r.task.clone(),
                    r.metric.clone(),
                    format!("{:.3}", r.baseline),
                    format!("{:.3}", r.candidate),
                    format!(
                        "{:+.3} [{:+.3}, {:+.3}]",
                        r.interval.diff, r.interval.lo, r.interval.hi
                    ),
                    r.verdict.as_str().into(),
                ]
            })
            .collect();
        blocks.push(Block::Table {
            header: [
                "family",
                "task",
                "metric",
                "baseline",
                "run",
                "difference [95% CI]",
                "",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            widths: vec![0.08, 0.3, 0.12, 0.1, 0.1, 0.24, 0.06],
        });
    }
    blocks
}

/// The title page: when and by what the report was made, every run with its
/// model and content hash, and the datasets the runs read.
pub(super) fn title_lines(
    runs: &Runs,
    created: (u16, u8, u8, u8, u8, u8),
    version: &str,
) -> Vec<String> {
    let mut title_lines = vec![format!(
        "Created {:04}-{:02}-{:02} {:02}:{:02} UTC by Spectrum Studio {version}.",
        created.0, created.1, created.2, created.3, created.4
    )];
    for r in &runs.evals {
        let hash = r.model_hash.as_deref().unwrap_or("not recorded");
        title_lines.push(format!(
            "Evaluation run {} ({}): model {} (content hash {}), template {}, profile {}, status {}.",
            r.run,
            r.name,
            r.model,
            shorten_hash(hash),
            r.template.as_str(),
            r.profile.as_str(),
            r.status
        ));
    }
    for t in &runs.trains {
        title_lines.push(format!(
            "Training run {} ({}): base model {} (content hash {}), tuned model {}, status {}, step {}/{}.",
            t.run.id,
            t.run.name,
            t.run.model.as_deref().unwrap_or("-"),
            shorten_hash(t.run.model_hash.as_deref().unwrap_or("not recorded")),
            t.run.result_model.as_deref().unwrap_or("-"),
            t.run.status,
            t.run.step,
            t.run.total_steps
        ));
    }
    title_lines.extend(provenance_lines(runs));
    title_lines
}

/// The datasets the report's runs read, as each run recorded them when it
/// started (a dataset removed or re-imported since keeps its recorded hash),
/// and the runs that predate provenance.
fn provenance_lines(runs: &Runs) -> Vec<String> {
    let recorded = runs
        .evals
        .iter()
        .map(|r| (r.run, &r.datasets))
        .chain(runs.trains.iter().map(|t| (t.run.id, &t.run.datasets)));
    let mut read: std::collections::BTreeMap<(&str, &str), Vec<i64>> = Default::default();
    let mut unrecorded = Vec::new();
    for (run, datasets) in recorded {
        if datasets.is_empty() {
            unrecorded.push(run.to_string());
        }
        for d in datasets {
            read.entry((&d.name, &d.content_hash))
                .or_default()
                .push(run);
        }
    }
    let mut lines: Vec<String> = read
        .into_iter()
        .map(|((name, hash), runs)| {
            let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
            format!(
                "Dataset {name} (content hash {}): read by run{} {}.",
                shorten_hash(hash),
                if runs.len() == 1 { "" } else { "s" },
                runs.join(", ")
            )
        })
        .collect();
    if !unrecorded.is_empty() {
        lines.push(format!(
            "Run{} {} started before Spectrum Studio recorded the datasets a run reads.",
            if unrecorded.len() == 1 { "" } else { "s" },
            unrecorded.join(", ")
        ));
    }
    lines
}

fn shorten_hash(h: &str) -> String {
    h.chars().take(16).collect()
}
