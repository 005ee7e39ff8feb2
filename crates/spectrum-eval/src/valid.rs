//! Validity and diversity (METHOD.md §4.3): samples for each prompt setting
//! (description only, examples only, both) and temperature, cut at the first
//! stop string, stripped and validated by the task's rule.

use serde::{Deserialize, Serialize};
use spectrum_lm::template::{self, GenerationPrompt};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{PromptFormat, SamplingParams};
use spectrum_suite::{Rng, ValidityTask};

use crate::metrics::{Yield, yield_stats};
use crate::{EvalError, Evaluator, Progress, Result};

/// What the prompt shows the model.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    Description,
    Examples,
    Both,
}

impl Setting {
    pub const ALL: [Setting; 3] = [Setting::Description, Setting::Examples, Setting::Both];

    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Description => "description",
            Setting::Examples => "examples",
            Setting::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Setting> {
        Setting::ALL.into_iter().find(|x| x.as_str() == s)
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

/// Cuts `text` at the first of `stops` and strips it.
pub fn cut(text: &str, stops: &[String]) -> String {
    let end = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .unwrap_or(text.len());
    text[..end].trim().to_string()
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
    let valid_set_size = task.rule.valid_set_size();
    let total = Setting::ALL.len() * settings.temperatures.len();
    let (mut cells, mut samples) = (Vec::new(), Vec::new());
    for setting in Setting::ALL {
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
                max_tokens: settings.max_new_tokens,
                stop_ids: stop_ids.clone(),
                stop_strings: stop_strings.clone(),
            };
            let ids = ev.lm.sample(&prompt.ids, &params)?;
            let texts: Vec<String> = ids
                .iter()
                .map(|s| Ok(cut(&tok.decode(s)?, &stop_strings)))
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
    fn cut_at_first_stop_then_strip() {
        let stops = vec!["\n".to_string(), "<|im_end|>".to_string()];
        assert_eq!(cut(" Ohio<|im_end|>\nTexas", &stops), "Ohio");
        assert_eq!(cut("  7 \nx", &stops), "7");
        assert_eq!(cut("plain", &stops), "plain");
    }
}
