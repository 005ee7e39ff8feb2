//! Scoring and generation use cases on a local model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use serde::Serialize;
use spectrum_lm::engine::output_scores;
use spectrum_lm::template::{self, PromptFormat, Rendered};
use spectrum_lm::{DeviceSpec, OutputScore, SamplingParams};
use spectrum_suite::import::{self, ImportOptions, Item, Shape};
use spectrum_suite::{Message, Role, Sequence};

use crate::{AppError, Listing, ModelSource, Studio};

#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub model: ModelSource,
    pub format: PromptFormat,
    /// A file of `messages` rows (JSONL, JSON, CSV or Parquet).
    pub file: PathBuf,
    /// Tokens per sequence; longer sequences keep as many whole examples as fit.
    pub budget: usize,
    /// Padded tokens per forward pass (bounds memory: logits are tokens x vocabulary).
    pub batch_tokens: usize,
    pub device: DeviceSpec,
}

/// The scores of one input row, in input order.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredRow {
    pub id: Option<serde_json::Value>,
    pub outputs: Vec<OutputScore>,
    /// Outputs left out because they did not fit the token budget.
    pub truncated: usize,
}

#[derive(Debug, Clone)]
pub enum PromptSource {
    /// Raw text, fed as is.
    Text(String),
    /// A task of the store: its description, in the chosen format.
    Task(String),
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub model: ModelSource,
    pub format: PromptFormat,
    pub prompt: PromptSource,
    pub params: SamplingParams,
    pub device: DeviceSpec,
}

impl Studio {
    /// Scores every output of every row of `request.file`: per-output summed
    /// loss and all-correct accuracy from one forward pass per sequence
    /// (METHOD.md §4.1). Rows are reported in input order through `on_row`.
    pub fn score(
        &self,
        request: &ScoreRequest,
        progress: &mut dyn FnMut(&str),
        on_row: &mut dyn FnMut(ScoredRow) -> Result<()>,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let options = ImportOptions {
            shape: Some(Shape::Messages),
            ..ImportOptions::default()
        };
        let files = import::files_to_import(std::slice::from_ref(&request.file))?;
        let mut items = Vec::new();
        import::import(&files, &options, &mut items, &mut |_| {}, cancel)?;
        let sequences: Vec<Sequence> = items
            .into_iter()
            .filter_map(|i| {
                if let Item::Sequence(s) = i {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        let dir = self.resolve_model(&request.model, progress)?;
        progress(&format!("loading {}", dir.display()));
        let mut loaded = crate::models::load_model(&dir, request.device)?;
        let lm = loaded.lm.as_mut();
        let rendered: Vec<Rendered> = sequences
            .iter()
            .map(|s| {
                template::render(
                    &loaded.tokenizer,
                    request.format,
                    &s.messages,
                    Some(request.budget),
                )
            })
            .collect::<Result<_, _>>()?;
        // Batch neighbours by length to waste little on padding; report in input order.
        let mut order: Vec<usize> = (0..rendered.len()).collect();
        order.sort_by_key(|&i| rendered[i].ids.len());
        let mut results: Vec<Option<ScoredRow>> = vec![None; rendered.len()];
        let mut next_to_emit = 0;
        let mut start = 0;
        while start < order.len() {
            if cancel.load(Ordering::Relaxed) {
                return Err(crate::Cancelled("scoring").into());
            }
            let mut end = start + 1;
            while end < order.len()
                && (end - start + 1) * rendered[order[end]].ids.len() <= request.batch_tokens
            {
                end += 1;
            }
            let batch: Vec<Vec<u32>> = order[start..end]
                .iter()
                .map(|&i| rendered[i].ids.clone())
                .collect();
            let scores = lm.score_tokens(&batch)?;
            for (&i, s) in order[start..end].iter().zip(&scores) {
                results[i] = Some(ScoredRow {
                    id: sequences[i].metadata.get("id").cloned(),
                    outputs: output_scores(&rendered[i], s),
                    truncated: rendered[i].truncated,
                });
            }
            while next_to_emit < results.len() {
                match results[next_to_emit].take() {
                    Some(row) => on_row(row)?,
                    None => break,
                }
                next_to_emit += 1;
            }
            progress(&format!("scored {end}/{} sequences", order.len()));
            start = end;
        }
        Ok(())
    }

    /// Samples `request.params.n` outputs; returns them as text.
    pub fn generate(
        &self,
        request: &GenerateRequest,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<String>> {
        let dir = self.resolve_model(&request.model, progress)?;
        progress(&format!("loading {}", dir.display()));
        let mut loaded = crate::models::load_model(&dir, request.device)?;
        let tokenizer = loaded.tokenizer.clone();
        let lm = loaded.lm.as_mut();
        let (ids, mut params) = match &request.prompt {
            PromptSource::Text(text) => (tokenizer.encode(text)?, request.params.clone()),
            PromptSource::Task(task) => {
                let description = self.store()?.task_description(task)?.ok_or_else(|| {
                    AppError::not_found(format!("no task {task:?}"), Listing::Tasks)
                })?;
                let messages = [Message::new(Role::Description, description)];
                let prompt = template::generation_prompt(&tokenizer, request.format, &messages)?;
                let mut params = request.params.clone();
                params.stop_ids.extend(prompt.stop_ids);
                params.stop_strings.extend(prompt.stop_strings);
                (prompt.ids, params)
            }
        };
        params.stop_ids.extend(tokenizer.eos.iter().copied());
        let samples = lm.sample(&ids, &params)?;
        samples
            .iter()
            .map(|s| {
                let text = tokenizer.decode(s)?;
                // Cut at the first stop string, as the sampler stopped there.
                let cut = params
                    .stop_strings
                    .iter()
                    .filter_map(|stop| text.find(stop.as_str()))
                    .min()
                    .unwrap_or(text.len());
                Ok(text[..cut].trim().to_string())
            })
            .collect()
    }
}
