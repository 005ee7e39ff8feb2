//! Validity and diversity (METHOD.md §4.3): samples for each prompt setting
//! (description only, examples only, both) and temperature, cut at the first
//! stop string, stripped and validated by the task's rule.

use serde::{Deserialize, Serialize};
use spectrum_lm::template::{self, GenerationPrompt};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{PromptFormat, SamplingParams};
use spectrum_suite::paper::py::strip;
use spectrum_suite::{Rng, ValidityTask};

use crate::metrics::{Yield, yield_stats};
use crate::{EvalError, Evaluator, Progress, Result};

spectrum_core::closed_set! {
    /// What the prompt shows the model.
    Setting { Description => "description", Examples => "examples", Both => "both" }
}

impl Setting {
    /// The cell headline figures report: description and examples in the
    /// prompt, sampled at temperature 1.
    pub fn is_headline(setting: Setting, temperature: f64) -> bool {
        setting == Setting::Both && temperature == 1.0
    }

    /// The prompt `task` samples from in this setting (the reference's,
    /// METHOD.md §6).
    pub fn prompt(
        self,
        tok: &TextTokenizer,
        format: PromptFormat,
        task: &ValidityTask,
    ) -> spectrum_lm::Result<GenerationPrompt> {
        let description = (self != Setting::Examples).then_some(task.description.as_str());
        let examples: Vec<&str> = match self {
            Setting::Description => Vec::new(),
            _ => task.examples.iter().map(String::as_str).collect(),
        };
        template::validity_prompt(tok, format, description, &examples)
    }
}

/// Candidates of each token step, as transformers samples by default (its
/// `top_k` of 50 applies when a model's generation config sets none, as the
/// reference's runs had it).
pub const TOP_K: usize = 50;

/// One sample and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Sample {
    pub setting: Setting,
    pub temperature: f64,
    pub index: usize,
    pub text: String,
    pub valid: bool,
}

/// The statistics of one (setting, temperature) cell of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Cell {
    pub setting: Setting,
    pub temperature: f64,
    #[serde(flatten)]
    pub stats: Yield,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ValidSummary {
    pub task: String,
    /// Size of the valid set for closed-set tasks.
    pub valid_set_size: Option<u64>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidResult {
    pub summary: ValidSummary,
    pub samples: Vec<Sample>,
}

/// The reference's stop strings (`eval_diverse_valid.py`): every family's end
/// of turn, then the model's end-of-sequence token, then a newline.
pub fn stop_strings(eos_token: Option<&str>) -> Vec<String> {
    let mut stops: Vec<String> = [
        "<|eot_id|>",
        "<end_of_turn>",
        "<|im_end|>",
        "<|end_of_text|>",
    ]
    .map(String::from)
    .into();
    stops.extend(eos_token.map(String::from));
    stops.push("\n".into());
    stops
}

/// A sample's text as the reference cleans it (`format_with_stop_strings`):
/// for each of `<pad>` and `<|endoftext|>`, remove it, strip, and cut before
/// the first of `stops` **in list order** that occurs (not the earliest in
/// the text); finally strip (Python's strip: U+001C..U+001F are spaces too).
/// So at most two cuts:
/// `"x\ny<|im_end|>z<|eot_id|>"` becomes `"x\ny"`.
pub fn cut(text: &str, stops: &[String]) -> String {
    let mut text = text.to_string();
    for junk in ["<pad>", "<|endoftext|>"] {
        text = strip(&text.replace(junk, "")).to_string();
        if let Some(at) = stops
            .iter()
            .filter(|s| !s.is_empty())
            .find_map(|s| text.find(s.as_str()))
        {
            text.truncate(at);
        }
    }
    strip(&text).to_string()
}

/// Samples and validates one task in every setting and temperature.
pub fn evaluate(
    ev: &mut Evaluator,
    task: &ValidityTask,
    progress: Progress,
) -> Result<ValidResult> {
    let (settings, tok) = (ev.settings, ev.tok);
    let validator = task.rule.compile().map_err(|e| EvalError::Task {
        task: task.task.clone(),
        reason: format!("its validity rule does not compile: {e}"),
    })?;
    // Coverage only for closed sets, as the reference (its InclusionTask).
    let valid_set_size = match task.rule {
        spectrum_suite::ValidityRule::ClosedSet { .. } => task.rule.valid_set_size(),
        _ => None,
    };
    let max_tokens = task.max_new_tokens.unwrap_or(settings.max_new_tokens);
    let total = Setting::ALL.len() * settings.temperatures.len();
    let (mut cells, mut samples) = (Vec::new(), Vec::new());
    let cleanup = stop_strings(tok.eos_token.as_deref());
    for &setting in Setting::ALL {
        let prompt = setting.prompt(tok, ev.format, task)?;
        let mut stop_ids = prompt.stop_ids.clone();
        stop_ids.extend(tok.eos.iter().copied());
        let mut stop_strings = prompt.stop_strings.clone();
        if !stop_strings.iter().any(|s| s == "\n") {
            stop_strings.push("\n".into());
        }
        for &temperature in &settings.temperatures {
            ev.check()?;
            let seed = Rng::derive(
                settings.seed,
                &format!("{}/{}/{temperature}", task.task, setting.as_str()),
            )
            .next_u64();
            let params = SamplingParams {
                n: settings.samples,
                temperature,
                top_p: 1.0,
                top_k: TOP_K,
                seed,
                max_tokens,
                stop_ids: stop_ids.clone(),
                stop_strings: stop_strings.clone(),
            };
            let ids = ev.lm.sample(&prompt.ids, &params)?;
            let texts: Vec<String> = ids
                .iter()
                .map(|s| Ok(cut(&tok.decode(s)?, &cleanup)))
                .collect::<Result<_>>()?;
            let verdicts: Vec<bool> = texts.iter().map(|t| validator.is_valid(t)).collect();
            cells.push(Cell {
                setting,
                temperature,
                stats: yield_stats(&texts, &verdicts, valid_set_size),
            });
            samples.extend(texts.into_iter().zip(verdicts).enumerate().map(
                |(index, (text, valid))| Sample {
                    setting,
                    temperature,
                    index,
                    text,
                    valid,
                },
            ));
            progress(cells.len(), total);
        }
    }
    Ok(ValidResult {
        summary: ValidSummary {
            task: task.task.clone(),
            valid_set_size,
            cells,
        },
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_at_the_first_stop_in_list_order_twice_then_strip() {
        let stops: Vec<String> = ["<|eot_id|>", "<|im_end|>", "\n"].map(String::from).into();
        assert_eq!(cut(" Ohio<|im_end|>\nTexas", &stops), "Ohio");
        assert_eq!(cut("  7 \nx", &stops), "7");
        assert_eq!(cut("plain", &stops), "plain");
        // List order, not text order, and two cuts at most: the newline stays.
        assert_eq!(cut("x\ny<|im_end|>z<|eot_id|>", &stops), "x\ny");
        assert_eq!(cut("<pad>a<|endoftext|>b", &stops), "ab");
        // Python's strip removes the information separators too.
        assert_eq!(cut("\u{1f}red\u{1c}", &stops), "red");
    }
}
