//! The figures of a report or chart that no one evaluation family owns:
//! the per-task heatmap, training curves and a rendered template (each
//! family draws its own, in `evaluation::family`).

use anyhow::{Context, Result};
use spectrum_eval::Family;
use spectrum_lm::template;
use spectrum_report::{Chart, Figure};
use spectrum_suite::{Message, Role};

use super::Runs;
use crate::{EvalReport, RunDetail};

/// Tasks x runs heatmap of a headline metric, coloured by the difference from
/// the baseline: [`crate::figures::heatmap`], as the app draws it.
pub(super) fn heatmap_figure(runs: &Runs, family: Family) -> Figure {
    let h = crate::figures::heatmap(&runs.evals, family);
    let height = 140 + 22 * h.tasks.len().max(1) as u32;
    Figure {
        title: format!("Per task: {}", h.metric),
        runs: runs.names(),
        chart: Chart::Heatmap {
            metric: h.metric,
            lower_is_better: h.lower_is_better,
            tasks: h.tasks,
            values: h.values,
            improvement: h.improvement,
            baseline: 0,
        },
        width: 640,
        height,
    }
}

pub(super) fn training_figure(t: &RunDetail) -> Figure {
    Figure {
        title: format!("Training run {} ({})", t.run.id, t.run.name),
        runs: Vec::new(),
        chart: Chart::Training {
            steps: t
                .steps
                .iter()
                .map(|s| (s.step as f64, s.loss, s.lr))
                .collect(),
            evals: t.evals.iter().map(|e| (e.step as f64, e.loss)).collect(),
        },
        width: 640,
        height: 260,
    }
}

/// A held-out example rendered in a run's template, loss tokens in [[ ]].
pub(super) fn rendered_example(r: &EvalReport) -> Result<String> {
    // An adapter folder's tokenizer is its base model's; a remote model keeps its own.
    let dir = if spectrum_openai::client::is_remote(&r.model_path) {
        r.model_path.clone()
    } else {
        spectrum_lm::hf::ModelDir::open(&r.model_path)?.dir
    };
    let tok = spectrum_lm::tokenizer::TextTokenizer::from_dir(&dir)
        .with_context(|| format!("the tokenizer of {}", dir.display()))?;
    let messages = vec![
        Message::new(
            Role::Description,
            "Flip a coin that lands heads 70% of the time.",
        ),
        Message::new(Role::Output, "heads"),
        Message::new(Role::Output, "tails"),
    ];
    let rendered = template::render(&tok, r.template, &messages, None)?;
    let mut text = String::new();
    let mut i = 0;
    while i < rendered.ids.len() {
        let start = i;
        let loss = rendered.loss[i];
        while i < rendered.ids.len() && rendered.loss[i] == loss {
            i += 1;
        }
        let piece = tok.decode(&rendered.ids[start..i])?;
        if loss {
            text.push_str(&format!("[[{piece}]]"));
        } else {
            text.push_str(&piece);
        }
    }
    Ok(text)
}
