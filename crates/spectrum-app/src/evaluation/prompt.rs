//! The exact prompt of an evaluation, and a task's verdict on texts
//! (`spectrum prompt`, `spectrum validate`, the Results view): built by the
//! same functions the evaluation runs, so what is shown is what is scored or
//! sampled.

use anyhow::Result;
use serde::Serialize;
use spectrum_core::Problem;
use spectrum_eval::valid::{self, Setting};
use spectrum_eval::{Family, Settings};
use spectrum_lm::PromptFormat;
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_store::TaskFilter;

use super::family::{Dist, EvalFamily, Steer, Valid};
use crate::{AppError, Listing, ModelSource, Studio};

/// Which prompt to show.
#[derive(Debug, Clone)]
pub struct PromptRequest {
    /// The model whose tokenizer and chat template render the prompt.
    pub model: ModelSource,
    pub task: String,
    /// `None`: the family the task's data is for.
    pub family: Option<Family>,
    pub format: PromptFormat,
    /// Validity only (default: both).
    pub setting: Option<Setting>,
    /// Which sequence (of those the evaluation scores, in its order) or item.
    pub index: usize,
    /// The sequence or item by id instead (as an evaluation's rows name it).
    pub pick: Option<String>,
    /// The evaluation settings (steerability's budget, k tokenizer, seed).
    pub settings: Settings,
}

/// One option of a distribution item, as scored after the prompt.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct PromptOption {
    pub text: String,
    pub ids: Vec<u32>,
}

/// A prompt exactly as the evaluation feeds it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct PromptView {
    pub task: String,
    pub family: Family,
    pub format: PromptFormat,
    /// The ids, decoded.
    pub text: String,
    pub ids: Vec<u32>,
    /// Each id's text.
    pub tokens: Vec<String>,
    /// Steerability: which tokens carry loss (are scored).
    pub loss: Vec<bool>,
    /// Distributions: the options scored after the prompt.
    pub options: Vec<PromptOption>,
    /// Validity: where a sample stops, and how long it may run.
    pub stop_strings: Vec<String>,
    pub max_new_tokens: Option<usize>,
    /// What was chosen: the sequence or item, k and the tokenizer it was measured with.
    pub note: String,
}

/// A task's verdict on one text.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct TextVerdict {
    pub text: String,
    /// The text as the evaluation cleans a sample before validating it.
    pub cleaned: String,
    pub valid: bool,
}

impl Studio {
    fn task_named(&self, name: &str) -> Result<spectrum_store::TaskSummary> {
        self.store()?
            .tasks(&TaskFilter::default())?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| AppError::not_found(format!("no task {name:?}"), Listing::Tasks).into())
    }

    fn tokenizer_of(
        &self,
        model: &ModelSource,
        progress: &mut dyn FnMut(&str),
    ) -> Result<TextTokenizer> {
        let dir = self.resolve_model(model, progress)?;
        if dir.join("tokenizer.json").exists() {
            return Ok(TextTokenizer::from_dir(&dir)?);
        }
        Ok(crate::models::load_model(&dir, spectrum_lm::DeviceSpec::Cpu)?.tokenizer)
    }

    /// The prompt `request` names, rendered by the evaluation's own code.
    pub fn prompt(
        &self,
        request: &PromptRequest,
        progress: &mut dyn FnMut(&str),
    ) -> Result<PromptView> {
        let task = self.task_named(&request.task)?;
        let family = request.family.unwrap_or(if request.setting.is_some() {
            Family::Valid
        } else if task.sequences > 0 {
            Family::Steer
        } else if task.distribution_items > 0 {
            Family::Dist
        } else {
            Family::Valid
        });
        let tok = self.tokenizer_of(&request.model, progress)?;
        let mut view = PromptView {
            task: task.name.clone(),
            family,
            format: request.format,
            text: String::new(),
            ids: Vec::new(),
            tokens: Vec::new(),
            loss: Vec::new(),
            options: Vec::new(),
            stop_strings: Vec::new(),
            max_new_tokens: None,
            note: String::new(),
        };
        let store = self.store()?;
        let chosen = Chosen {
            request,
            task: &task,
            tok: &tok,
            store: &store,
        };
        match family {
            Family::Steer => Steer::prompt(self, &chosen, &mut view)?,
            Family::Dist => Dist::prompt(self, &chosen, &mut view)?,
            Family::Valid => Valid::prompt(self, &chosen, &mut view)?,
        }
        view.text = tok.decode(&view.ids)?;
        view.tokens = view
            .ids
            .iter()
            .map(|&id| tok.decode(&[id]))
            .collect::<Result<_, _>>()?;
        Ok(view)
    }

    /// The verdict of `task`'s validity rule on each text, after the cleanup
    /// the evaluation applies to samples.
    pub fn validate(&self, task: &str, texts: &[String]) -> Result<Vec<TextVerdict>> {
        let summary = self.task_named(task)?;
        let defs = self.store()?.task_validity(summary.id)?;
        let def = defs.first().ok_or_else(|| {
            AppError::not_found(format!("{task} has no validity rule"), Listing::Tasks)
        })?;
        let validator = def.rule.compile()?;
        let stops = valid::stop_strings(None);
        Ok(texts
            .iter()
            .map(|t| {
                let cleaned = valid::cut(t, &stops);
                TextVerdict {
                    text: t.clone(),
                    valid: validator.is_valid(&cleaned),
                    cleaned,
                }
            })
            .collect())
    }
}

/// A prompt request with what it was resolved to: the task, the model's
/// tokenizer, the store.
pub(crate) struct Chosen<'a> {
    pub(crate) request: &'a PromptRequest,
    pub(crate) task: &'a spectrum_store::TaskSummary,
    pub(crate) tok: &'a TextTokenizer,
    pub(crate) store: &'a spectrum_store::Store,
}

/// An `index` past the `count` things a task has.
pub(crate) fn past_the_end(task: &str, what: &str, count: usize, index: usize) -> anyhow::Error {
    Problem::setting(
        format!("{task}: {count} {what}; index {index} is past them"),
        "index",
        format!("0 to {}", count.saturating_sub(1)),
    )
    .into()
}
