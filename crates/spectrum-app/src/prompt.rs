//! The exact prompt of an evaluation, and a task's verdict on texts
//! (`spectrum prompt`, `spectrum validate`, the Results view): built by the
//! same functions the evaluation runs, so what is shown is what is scored or
//! sampled.

use anyhow::{Context, Result};
use serde::Serialize;
use spectrum_core::Problem;
use spectrum_eval::steer::{self, EvalSequence};
use spectrum_eval::valid::{self, Setting};
use spectrum_eval::{Family, Settings, dist};
use spectrum_lm::PromptFormat;
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_store::TaskFilter;

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
        let store = self.store()?;
        let i = request.index;
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
        match family {
            Family::Steer => {
                let sequences: Vec<EvalSequence> = store
                    .task_sequences_with_ids(task.id)?
                    .into_iter()
                    .map(|(id, messages)| EvalSequence { id, messages })
                    .collect();
                let k_tok = self.k_tokenizer(&request.settings, &tok)?;
                let (k, chosen) = steer::prepare(
                    &tok,
                    &k_tok.tokenizer,
                    request.format,
                    &task.name,
                    &sequences,
                    &request.settings,
                )?;
                let i = match &request.pick {
                    Some(id) => chosen.iter().position(|(c, _)| c == id).with_context(|| {
                        format!(
                            "{}: sequence {id} is not among those the evaluation scores",
                            task.name
                        )
                    })?,
                    None => i,
                };
                let Some((id, r)) = chosen.get(i) else {
                    return Err(past_the_end(
                        &task.name,
                        "sequences the evaluation scores",
                        chosen.len(),
                        i,
                    ));
                };
                view.ids = r.ids.clone();
                view.loss = r.loss.clone();
                view.note = format!(
                    "sequence {id} ({} of {}), examples 0..={k}: k measured with {} within {} tokens",
                    i + 1,
                    chosen.len(),
                    k_tok.name,
                    request.settings.budget
                );
            }
            Family::Dist => {
                let items = store.task_distribution_items(task.id)?;
                let i = match &request.pick {
                    Some(id) => (0..items.len())
                        .find(|&j| &dist::item_id(&items[j], j) == id)
                        .with_context(|| format!("{}: no item {id}", task.name))?,
                    None => i,
                };
                let Some(item) = items.get(i) else {
                    return Err(past_the_end(
                        &task.name,
                        "distribution items",
                        items.len(),
                        i,
                    ));
                };
                let (prompt, options, _) = dist::item_tokens(&tok, request.format, item)?;
                view.ids = prompt;
                for (o, ids) in item.options.iter().zip(options) {
                    view.options.push(PromptOption {
                        text: o.clone(),
                        ids,
                    });
                }
                view.note = format!(
                    "item {} ({} of {})",
                    dist::item_id(item, i),
                    i + 1,
                    items.len()
                );
            }
            Family::Valid => {
                let defs = store.task_validity(task.id)?;
                let def = defs
                    .first()
                    .with_context(|| format!("{}: no diverse-valid definition", task.name))?;
                let setting = request.setting.unwrap_or(Setting::Both);
                let prompt = setting.prompt(&tok, request.format, def)?;
                view.ids = prompt.ids;
                view.stop_strings = valid::stop_strings(tok.eos_token.as_deref());
                view.max_new_tokens = Some(
                    def.max_new_tokens
                        .unwrap_or(request.settings.max_new_tokens),
                );
                view.note = format!("setting {}", setting.as_str());
            }
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

/// An `index` past the `count` things a task has.
fn past_the_end(task: &str, what: &str, count: usize, index: usize) -> anyhow::Error {
    Problem::setting(
        format!("{task}: {count} {what}; index {index} is past them"),
        "index",
        format!("0 to {}", count.saturating_sub(1)),
    )
    .into()
}
