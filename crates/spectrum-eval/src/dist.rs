//! Distributional alignment (METHOD.md §4.2): for each prompt, the probability
//! of every option (without the end token) from one pass over the prompt and
//! its KV cache, compared with the target distribution.

use serde::{Deserialize, Serialize};
use spectrum_lm::LanguageModel;
use spectrum_lm::template::{self, PromptFormat};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_suite::DistributionItem;

use crate::metrics::{Alignment, MeanSe, alignment, mean_se};
use crate::{EvalError, Evaluator, Progress, Result, sample_indices};

/// One scored item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct DistItem {
    pub id: String,
    pub options: Vec<String>,
    /// The target distribution, as given.
    pub target: Vec<f64>,
    #[serde(flatten)]
    pub alignment: Alignment,
    /// False where tokenising prompt + option as one string would split the
    /// boundary differently from our segment-wise tokens (METHOD.md §4.2 asks
    /// to say so rather than guess); the scores are the segment-wise ones, the
    /// same tokens training sees.
    pub boundary_clean: bool,
}

/// A task's means over its items, each with its standard error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct DistSummary {
    pub task: String,
    pub items: usize,
    pub js: MeanSe,
    pub kl: MeanSe,
    pub reverse_kl: MeanSe,
    pub tv: MeanSe,
    pub cross_entropy: MeanSe,
    pub mode_match: MeanSe,
    pub coverage: MeanSe,
    /// Ordinal tasks only.
    pub wasserstein: Option<MeanSe>,
    /// Items whose prompt/option token boundary is not clean.
    pub unclean_boundaries: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistResult {
    pub summary: DistSummary,
    pub items: Vec<DistItem>,
}

/// The id an item is paired on: its `id` field, else its position.
pub fn item_id(item: &DistributionItem, position: usize) -> String {
    match item.metadata.get("id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => format!("{}/{position}", item.task),
    }
}

/// The tokens an item is scored on: the prompt (description and input, then
/// the opened output) and each option's tokens as they follow it, without the
/// end marker. Also whether tokenising prompt + option as one string (as the
/// reference does) would give the same tokens after the prompt for every option.
pub fn item_tokens(
    tok: &TextTokenizer,
    format: PromptFormat,
    item: &DistributionItem,
) -> Result<(Vec<u32>, Vec<Vec<u32>>, bool)> {
    let prompt = template::distribution_prompt(
        tok,
        format,
        Some(item.description.as_str()).filter(|d| !d.trim().is_empty()),
        Some(item.input.as_str()).filter(|x| !x.is_empty()),
        item.output_name(),
    )?;
    let texts: Vec<String> = item
        .options
        .iter()
        .map(|o| template::output_text(format, o))
        .collect();
    let options: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tok.encode(t))
        .collect::<Result<_, _>>()?;
    let skip = tok.bos.map_or(0, |b| (prompt.first() == Some(&b)) as usize);
    let prompt_text = tok.decode(&prompt[skip..])?;
    let mut boundary_clean = true;
    for (text, ids) in texts.iter().zip(&options) {
        let joined = tok.encode(&format!("{prompt_text}{text}"))?;
        let expected = prompt[skip..].iter().chain(ids.iter());
        boundary_clean &= joined.iter().eq(expected);
    }
    Ok((prompt, options, boundary_clean))
}

/// Scores one item.
pub fn score_item(
    lm: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    format: PromptFormat,
    item: &DistributionItem,
    id: String,
) -> Result<DistItem> {
    let (prompt, options, boundary_clean) = item_tokens(tok, format, item)?;
    let logprobs = lm.option_logprobs(&prompt, &options)?;
    Ok(DistItem {
        id,
        options: item.options.clone(),
        target: item.probs.clone(),
        alignment: alignment(&logprobs, &item.probs, item.ordinal),
        boundary_clean,
    })
}

/// Scores up to `settings.max_items` items of one task, chosen by seed.
pub fn evaluate(
    ev: &mut Evaluator,
    task: &str,
    items: &[DistributionItem],
    progress: Progress,
) -> Result<DistResult> {
    let settings = ev.settings;
    if items.is_empty() {
        return Err(EvalError::Task {
            task: task.to_string(),
            reason: "has no distribution items".into(),
        });
    }
    let chosen = sample_indices(items.len(), settings.max_items, settings.seed, task);
    let mut out = Vec::with_capacity(chosen.len());
    for (done, &i) in chosen.iter().enumerate() {
        ev.check()?;
        out.push(score_item(
            ev.lm,
            ev.tok,
            ev.format,
            &items[i],
            item_id(&items[i], i),
        )?);
        progress(done + 1, chosen.len());
    }
    Ok(DistResult {
        summary: summarise(task, &out),
        items: out,
    })
}

/// Task means from item results.
pub fn summarise(task: &str, items: &[DistItem]) -> DistSummary {
    let of = |f: &dyn Fn(&Alignment) -> f64| -> MeanSe {
        mean_se(&items.iter().map(|i| f(&i.alignment)).collect::<Vec<_>>())
    };
    let w: Vec<f64> = items
        .iter()
        .filter_map(|i| i.alignment.wasserstein)
        .collect();
    DistSummary {
        task: task.to_string(),
        items: items.len(),
        js: of(&|a| a.js),
        kl: of(&|a| a.kl),
        reverse_kl: of(&|a| a.reverse_kl),
        tv: of(&|a| a.tv),
        cross_entropy: of(&|a| a.cross_entropy),
        mode_match: of(&|a| a.mode_match as u8 as f64),
        coverage: of(&|a| a.coverage),
        wasserstein: (!w.is_empty()).then(|| mean_se(&w)),
        unclean_boundaries: items.iter().filter(|i| !i.boundary_clean).count(),
    }
}
