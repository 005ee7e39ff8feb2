//! [`RemoteModel`]: the [`LanguageModel`] trait over OpenAI-compatible servers.
//!
//! Scoring sends token ids with `echo` and `logprobs` (and reads vLLM's
//! `prompt_logprobs` where a server returns them); sampling sends the run's
//! parameters (`n`, `temperature`, `top_p`, `top_k`, `seed`, `stop`,
//! `stop_token_ids`) and re-tokenises the returned text with the model's
//! tokenizer. Work is split across every endpoint, `concurrency` requests at a
//! time each; 429 and 5xx answers and dropped connections are retried with
//! exponential back-off (honouring `Retry-After`).
//!
//! API keys come from the environment (`api_key_env`, `OPENAI_API_KEY` by
//! default) or the OS keyring (service `spectrum-studio`, user: the endpoint's
//! URL); they are held in memory only.
//!
//! `spec` parses and stores where a model is served, `keys` finds its API
//! key, `http` talks to one endpoint with retries, `pool` spreads work over
//! the endpoints; this file scores and samples through them.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spectrum_core::Problem;
use spectrum_lm::engine::{LanguageModel, SamplingParams, TokenScores};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{LmError, Result};

mod echo;
mod http;
mod keys;
mod pool;
mod spec;

use http::{Endpoint, Http, endpoints};
pub use keys::{KEYRING_SERVICE, store_api_key};
pub use spec::{RemoteSpec, SPEC_FILE, is_remote};

use crate::wire::{
    CompletionChoice, CompletionRequest, CompletionResponse, ErrorBody, Logprobs, ModelList,
    Prompt, SamplingRequest, Stop, TokenizerFiles,
};

/// The seed offset between consecutive samples of one request (as `LocalModel` draws them).
const SAMPLE_SEED_STRIDE: u64 = 0x9E37_79B9;

fn remote(message: impl Into<String>) -> LmError {
    LmError::Remote(message.into())
}

/// A remote-model failure with a way out.
fn remote_fix(message: impl Into<String>, fix: impl Into<String>) -> LmError {
    Problem::say(message, fix).into()
}

/// A model behind OpenAI-compatible servers.
#[derive(Debug)]
pub struct RemoteModel {
    pub spec: RemoteSpec,
    pub tokenizer: TextTokenizer,
    endpoints: Vec<Endpoint>,
    http: Http,
}

impl RemoteModel {
    pub fn new(spec: RemoteSpec, tokenizer: TextTokenizer) -> RemoteModel {
        RemoteModel {
            endpoints: endpoints(&spec),
            http: Http::new(&spec),
            spec,
            tokenizer,
        }
    }

    /// Opens a remote model's folder: `remote.json` and the tokenizer files.
    pub fn open(dir: &Path) -> Result<RemoteModel> {
        let spec = RemoteSpec::read(dir)?;
        let tokenizer = TextTokenizer::from_dir(dir)?;
        Ok(RemoteModel::new(spec, tokenizer))
    }

    /// Checks that every endpoint answers and serves the model.
    pub fn check(&self) -> Result<()> {
        check_endpoints(&self.spec, &self.http, &self.endpoints)
    }
}

/// Checks that every endpoint of `spec` answers and serves its model.
pub fn check(spec: &RemoteSpec) -> Result<()> {
    check_endpoints(spec, &Http::new(spec), &endpoints(spec))
}

fn check_endpoints(spec: &RemoteSpec, http: &Http, endpoints: &[Endpoint]) -> Result<()> {
    for endpoint in endpoints {
        let list: ModelList = http.get(endpoint, "/models")?;
        let names: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
        if !names.contains(&spec.model.as_str()) {
            return Err(remote_fix(
                format!(
                    "{} serves {}, not {:?}",
                    endpoint.url,
                    if names.is_empty() {
                        "no model".to_string()
                    } else {
                        names.join(", ")
                    },
                    spec.model
                ),
                "name one of those after '#'",
            ));
        }
    }
    Ok(())
}

impl RemoteModel {
    /// Fetches the tokenizer from a `spectrum serve` endpoint into `dir`.
    pub fn fetch_tokenizer(spec: &RemoteSpec, dir: &Path) -> Result<()> {
        let http = Http::new(spec);
        let endpoint = &endpoints(spec)[0];
        let files: TokenizerFiles = http
            .get(endpoint, &format!("/models/{}/tokenizer", spec.model))
            .map_err(|e| {
                Problem::setting(
                    format!("{e}; only `spectrum serve` hands out its tokenizer"),
                    "tokenizer",
                    "the model's tokenizer (spectrum model add URL#NAME --tokenizer ...): a folder holding tokenizer.json, the .gguf file the server runs, or hf:ORG/NAME",
                )
            })?;
        let write = |name: &str, value: &serde_json::Value| -> Result<()> {
            let path = dir.join(name);
            let text = serde_json::to_string(value).map_err(|e| remote(e.to_string()))?;
            std::fs::write(&path, text).map_err(|e| LmError::io(&path, e))
        };
        write("tokenizer.json", &files.tokenizer)?;
        if let Some(config) = &files.tokenizer_config {
            write("tokenizer_config.json", config)?;
        }
        Ok(())
    }

    fn completions(
        &self,
        endpoint: &Endpoint,
        request: &CompletionRequest,
    ) -> Result<Vec<CompletionChoice>> {
        let response: CompletionResponse = self.http.post(endpoint, "/completions", request)?;
        let mut choices = response.choices;
        choices.sort_by_key(|c| c.index);
        Ok(choices)
    }

    /// `ids` as the endpoint takes a prompt: token ids, or their text for a
    /// server that takes text only.
    fn prompt_of(&self, endpoint: &Endpoint, ids: &[u32]) -> Result<Prompt> {
        Ok(if endpoint.text_only.load(Ordering::Relaxed) {
            Prompt::Text(self.tokenizer.decode(ids)?)
        } else {
            Prompt::Tokens(ids.to_vec())
        })
    }

    /// A scoring request: the prompt echoed with its log-probabilities.
    fn score_body(&self, prompt: Prompt, max_tokens: usize) -> CompletionRequest {
        CompletionRequest {
            model: self.spec.model.clone(),
            prompt: Some(prompt),
            max_tokens: Some(max_tokens),
            sampling: SamplingRequest {
                temperature: Some(0.0),
                ..SamplingRequest::default()
            },
            echo: true,
            // The top entries beyond the first are the calibration's
            // predictions (entries above 1%); 5 is the OpenAI API's limit.
            logprobs: Some(5),
            ..CompletionRequest::default()
        }
    }

    /// Scores of a few sequences in one request; one request each, as text,
    /// for a server that takes text prompts only.
    fn score_request(&self, endpoint: &Endpoint, batch: Vec<Vec<u32>>) -> Result<Vec<TokenScores>> {
        if endpoint.text_only.load(Ordering::Relaxed) {
            return batch
                .iter()
                .map(|seq| self.score_text(endpoint, seq))
                .collect();
        }
        // Only the prompt is wanted; servers that insist on generating get one token.
        let zero = !endpoint.one_token.load(Ordering::Relaxed);
        let mut request =
            self.score_body(Prompt::TokenBatch(batch.clone()), if zero { 0 } else { 1 });
        let choices = match self.completions(endpoint, &request) {
            Err(e) if refuses_token_ids(&e) => {
                endpoint.text_only.store(true, Ordering::Relaxed);
                return self.score_request(endpoint, batch);
            }
            Err(LmError::Remote(m))
                if zero && m.contains("HTTP 400") && m.contains("max_tokens") =>
            {
                endpoint.one_token.store(true, Ordering::Relaxed);
                request.max_tokens = Some(1);
                self.completions(endpoint, &request)?
            }
            other => other?,
        };
        if choices.len() != batch.len() {
            return Err(remote_fix(
                format!(
                    "{}: asked to score {} prompts, got {} answers",
                    endpoint.url,
                    batch.len(),
                    choices.len()
                ),
                "check that the server takes token-id prompts in a batch",
            ));
        }
        batch
            .iter()
            .zip(&choices)
            .map(|(seq, choice)| self.read_scores(endpoint, seq, choice, false))
            .collect()
    }

    /// Scores of one sequence sent as its text (llama-cpp-python's server):
    /// the server tokenises it, [`echo::align`] checks its tokens are ours.
    fn score_text(&self, endpoint: &Endpoint, seq: &[u32]) -> Result<TokenScores> {
        // llama-cpp-python reads `max_tokens: 0` as "no limit": ask for one.
        let request = self.score_body(self.prompt_of(endpoint, seq)?, 1);
        let choices = self.completions(endpoint, &request)?;
        let choice = choices
            .first()
            .ok_or_else(|| remote(format!("{}: a scoring request got no answer", endpoint.url)))?;
        self.read_scores(endpoint, seq, choice, true)
    }

    /// Teacher-forced scores of `seq` from one completions choice: vLLM's
    /// `prompt_logprobs` if present, else the echoed `logprobs`, whose
    /// alignment with the tokens is checked once per first token.
    fn read_scores(
        &self,
        endpoint: &Endpoint,
        seq: &[u32],
        choice: &CompletionChoice,
        text_prompt: bool,
    ) -> Result<TokenScores> {
        let failed = |why: String| {
            remote_fix(
                format!("{}: {why}", endpoint.url),
                "serve the model with vLLM, SGLang, llama-cpp-python or `spectrum serve`, which \
                 return prompt log-probabilities for echo + logprobs (llama.cpp's own server does \
                 not: README, Remote models)",
            )
        };
        if let Some(entries) = choice
            .prompt_logprobs
            .as_ref()
            .filter(|e| e.len() >= seq.len())
        {
            return prompt_logprob_scores(seq, entries).map_err(failed);
        }
        let logprobs = choice
            .logprobs
            .as_ref()
            .ok_or("the answer holds no log-probabilities for the prompt tokens".to_string())
            .map_err(failed)?;
        let echoed = echo::align(&self.tokenizer, seq, logprobs, text_prompt).map_err(|why| {
            if !text_prompt {
                return failed(why);
            }
            remote_fix(
                format!(
                    "{}: {why}. The server takes text prompts only and tokenises a prompt as one \
                     text, while this prompt's parts were tokenised apart (as the reference does; \
                     the colon format has no special token between its parts)",
                    endpoint.url
                ),
                "evaluate with --template spectrum or chat, whose parts are separated by special \
                 tokens, or serve the model with a server that takes token ids (vLLM, SGLang, \
                 `spectrum serve`)",
            )
        })?;
        let scores = echo_scores(seq, logprobs, &echoed).map_err(failed)?;
        self.check_alignment(endpoint, seq, logprobs, &echoed)?;
        Ok(scores)
    }

    /// Once per first token: the distribution echoed for the last token of
    /// `seq` must be the one the server predicts from the tokens before it.
    /// llama-cpp-python's echo is shifted by one position when a prompt does
    /// not start with the model's BOS token; scores read from it would be
    /// another token's.
    fn check_alignment(
        &self,
        endpoint: &Endpoint,
        seq: &[u32],
        logprobs: &Logprobs,
        echoed: &echo::Echoed,
    ) -> Result<()> {
        let checked = endpoint
            .aligned
            .lock()
            .map(|a| a.contains(&seq[0]))
            .unwrap_or(false);
        if checked {
            return Ok(());
        }
        // The token whose distribution is compared: the last one; for a text
        // prompt the last special token, since the text before a special token
        // tokenises as it does inside the whole (the server splits at special
        // tokens first), where the text of other prefixes need not.
        let text = endpoint.text_only.load(Ordering::Relaxed);
        let last = (2..seq.len())
            .rev()
            .find(|&p| {
                !text || (echoed.entry[p].is_some() && echo::is_special(&self.tokenizer, seq[p]))
            })
            .unwrap_or(seq.len().saturating_sub(1));
        if last < 2 {
            return Ok(());
        }
        let Some(echoed_top) = echoed.entry[last]
            .and_then(|e| logprobs.top_logprobs.get(e))
            .and_then(Option::as_ref)
        else {
            return Ok(());
        };
        // The server's prediction of that token: one greedy token after the
        // tokens before it, with its top entries.
        let request = CompletionRequest {
            echo: false,
            ..self.score_body(self.prompt_of(endpoint, &seq[..last])?, 1)
        };
        let choices = self.completions(endpoint, &request)?;
        let predicted = choices
            .first()
            .and_then(|c| c.logprobs.as_ref())
            .and_then(|l| l.top_logprobs.first())
            .and_then(Option::as_ref);
        if let Some(predicted) = predicted
            && !echo::same_distribution(echoed_top, predicted)
        {
            let first = self.tokenizer.decode(&seq[..1]).unwrap_or_default();
            return Err(remote_fix(
                format!(
                    "{}: the server's echoed log-probabilities are not the prompt tokens' own: \
                     for token {last} it echoes [{}] but predicts [{}] from the tokens before it \
                     (shifted by one position, as llama-cpp-python's server does for prompts that \
                     do not start with the model's BOS token; this prompt starts with {first:?})",
                    endpoint.url,
                    echo::top_three(echoed_top),
                    echo::top_three(predicted),
                ),
                "evaluate with a prompt format whose prompts start with the model's BOS token \
                 (--template chat or spectrum for chat models whose BOS opens a turn, as \
                 SmolLM2's <|im_start|> does), or serve the model with vLLM or `spectrum serve` \
                 (README, Remote models)",
            ));
        }
        if let Ok(mut aligned) = endpoint.aligned.lock() {
            aligned.push(seq[0]);
        }
        Ok(())
    }

    fn requests_per_call(&self, items: usize) -> usize {
        let slots = self.endpoints.len() * self.spec.concurrency.max(1);
        items.div_ceil(slots).clamp(1, 16)
    }
}

/// Whether a server refused token-id prompts (llama-cpp-python's server
/// validates `prompt` as text: HTTP 500 with a validation error).
fn refuses_token_ids(e: &LmError) -> bool {
    matches!(e, LmError::Remote(m) if m.contains("valid string") && m.contains("prompt"))
}

/// Scores from vLLM's `prompt_logprobs` (token ids with ranks).
fn prompt_logprob_scores(
    seq: &[u32],
    entries: &[Option<BTreeMap<String, crate::wire::PromptLogprob>>],
) -> std::result::Result<TokenScores, String> {
    let mut scores = TokenScores::with_capacity(seq.len().saturating_sub(1));
    let min_lp = spectrum_lm::engine::CALIBRATION_MIN_P.ln();
    for (p, &token) in seq.iter().enumerate().skip(1) {
        let entry = entries[p]
            .as_ref()
            .ok_or_else(|| format!("prompt_logprobs has no entry for token {p}"))?;
        let own = entry
            .get(&token.to_string())
            .ok_or_else(|| format!("prompt_logprobs of token {p} lacks the token itself"))?;
        let (top_id, top) = entry
            .iter()
            .map(|(id, lp)| (id.parse::<u32>().unwrap_or(u32::MAX), lp.logprob))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((token, own.logprob));
        let rank = own.rank.map_or(0, |r| r as u32);
        let mut others: Vec<(u32, f32)> = entry
            .iter()
            .filter_map(|(id, lp)| Some((id.parse::<u32>().ok()?, lp.logprob)))
            .filter(|&(id, lp)| id != token && lp > min_lp)
            .map(|(id, lp)| (id, lp as f32))
            .collect();
        others.sort_by_key(|&(id, _)| id);
        scores.alternatives.push(others);
        scores.logprobs.push(own.logprob as f32);
        scores.hits.push(rank == 1 || own.logprob >= top);
        scores.top_logprobs.push(top.max(own.logprob) as f32);
        scores.top_ids.push(top_id);
        scores.ranks.push(rank);
    }
    Ok(scores)
}

/// Scores from echoed `logprobs`, entries found by [`echo::align`]. A token
/// the server left out of its echo (llama-cpp-python's BOS), and the first
/// entry when the API's convention leaves it null, score NaN: no evaluation
/// scores those (a turn's opening token, the prompt's second token), and
/// [`RemoteModel::option_logprobs`] refuses a NaN it would sum.
fn echo_scores(
    seq: &[u32],
    logprobs: &Logprobs,
    echoed: &echo::Echoed,
) -> std::result::Result<TokenScores, String> {
    let mut scores = TokenScores::with_capacity(seq.len().saturating_sub(1));
    let min_lp = spectrum_lm::engine::CALIBRATION_MIN_P.ln();
    for (p, &token) in seq.iter().enumerate().skip(1) {
        let known = echoed.entry[p].and_then(|e| {
            let own = logprobs.token_logprobs[e];
            if own.is_none() && e > 0 {
                return Some(Err(format!("no log-probability for prompt token {p}")));
            }
            Some(Ok((
                own?,
                logprobs.top_logprobs.get(e).and_then(Option::as_ref),
            )))
        });
        let Some(known) = known else {
            scores.alternatives.push(Vec::new());
            scores.logprobs.push(f32::NAN);
            scores.hits.push(false);
            scores.top_logprobs.push(f32::NAN);
            scores.top_ids.push(u32::MAX);
            scores.ranks.push(0);
            continue;
        };
        let (own, top) = known?;
        let best = top
            .and_then(|t| t.values().copied().max_by(f64::total_cmp))
            .ok_or_else(|| format!("no top log-probabilities for prompt token {p}"))?;
        let hit = own >= best;
        // Named by text only: the token's own entry is the one equal to its
        // log-probability; the others are the alternatives (ids unknown).
        let mut own_seen = false;
        let others = top
            .into_iter()
            .flat_map(|t| t.values().copied())
            .filter(|&lp| {
                let is_own = !own_seen && lp == own;
                own_seen |= is_own;
                !is_own && lp > min_lp
            })
            .map(|lp| (u32::MAX, lp as f32))
            .collect();
        scores.alternatives.push(others);
        scores.logprobs.push(own as f32);
        scores.hits.push(hit);
        scores.top_logprobs.push(best.max(own) as f32);
        // Servers name the top token by its text only: known when it is this token.
        scores.top_ids.push(if hit { token } else { u32::MAX });
        scores.ranks.push(if hit { 1 } else { 0 });
    }
    Ok(scores)
}

impl LanguageModel for RemoteModel {
    fn score_tokens(&mut self, batch: &[Vec<u32>]) -> Result<Vec<TokenScores>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let per = self.requests_per_call(batch.len());
        let jobs: Vec<Vec<Vec<u32>>> = batch.chunks(per).map(<[_]>::to_vec).collect();
        let parts = self.parallel(jobs, &|endpoint, job| self.score_request(endpoint, job))?;
        Ok(parts.into_iter().flatten().collect())
    }

    fn option_logprobs(&mut self, prompt: &[u32], options: &[Vec<u32>]) -> Result<Vec<f64>> {
        spectrum_lm::engine::check_prompt(prompt)?;
        let scored: Vec<usize> = (0..options.len())
            .filter(|&k| !options[k].is_empty())
            .collect();
        let sequences: Vec<Vec<u32>> = scored
            .iter()
            .map(|&k| [prompt, &options[k]].concat())
            .collect();
        let scores = self.score_tokens(&sequences)?;
        let mut totals = vec![0.0; options.len()]; // the empty continuation has probability 1
        for (&k, s) in scored.iter().zip(&scores) {
            let start = prompt.len() - 1;
            let span = &s.logprobs[start..start + options[k].len()];
            if span.iter().any(|l| l.is_nan()) {
                return Err(remote_fix(
                    format!(
                        "{}: the server gave no log-probability for a token of option {k}",
                        self.spec.source()
                    ),
                    "serve the model with a server that echoes every prompt token (README, Remote models)",
                ));
            }
            totals[k] = span.iter().map(|&l| l as f64).sum();
        }
        Ok(totals)
    }

    fn sample(&mut self, prompt: &[u32], params: &SamplingParams) -> Result<Vec<Vec<u32>>> {
        spectrum_lm::engine::check_prompt(prompt)?;
        let n = params.n.max(1);
        let per = self.requests_per_call(n).max(n.div_ceil(64));
        // Part j starts at sample `start`: its seed is shifted so that a server
        // seeding samples as LocalModel does draws the same rows as one request.
        let jobs: Vec<(usize, usize)> = (0..n)
            .step_by(per)
            .map(|start| (start, per.min(n - start)))
            .collect();
        let texts = self.parallel(jobs, &|endpoint, (start, count)| {
            let request = |first: usize, n: usize| -> Result<CompletionRequest> {
                Ok(CompletionRequest {
                    model: self.spec.model.clone(),
                    prompt: Some(self.prompt_of(endpoint, prompt)?),
                    max_tokens: Some(params.max_tokens),
                    sampling: SamplingRequest {
                        temperature: Some(params.temperature),
                        top_p: (params.top_p < 1.0).then_some(params.top_p),
                        top_k: (params.top_k > 0).then_some(params.top_k as i64),
                        n: Some(n),
                        seed: Some(params.seed.wrapping_add(first as u64 * SAMPLE_SEED_STRIDE)),
                        stop: (!params.stop_strings.is_empty())
                            .then(|| Stop::Many(params.stop_strings.clone())),
                        stop_token_ids: (!params.stop_ids.is_empty())
                            .then(|| params.stop_ids.clone()),
                    },
                    ..CompletionRequest::default()
                })
            };
            let one_choice = endpoint.one_choice.load(Ordering::Relaxed);
            let mut choices = if one_choice {
                Vec::new()
            } else {
                match self.completions(endpoint, &request(start, count)?) {
                    Err(e) if refuses_token_ids(&e) => {
                        endpoint.text_only.store(true, Ordering::Relaxed);
                        self.completions(endpoint, &request(start, count)?)?
                    }
                    other => other?,
                }
            };
            // A server that answers one choice whatever `n` asks
            // (llama-cpp-python): one request per sample, seeded as sample
            // `start + j` of one request would be.
            if one_choice || (choices.len() == 1 && count > 1) {
                endpoint.one_choice.store(true, Ordering::Relaxed);
                for j in choices.len()..count {
                    choices.extend(self.completions(endpoint, &request(start + j, 1)?)?);
                }
            }
            if choices.len() != count {
                return Err(remote(format!(
                    "{}: asked for {count} samples, got {}",
                    endpoint.url,
                    choices.len()
                )));
            }
            Ok(choices.into_iter().map(|c| c.text).collect::<Vec<_>>())
        })?;
        texts
            .into_iter()
            .flatten()
            .map(|text| {
                let mut ids = self.tokenizer.encode(&text)?;
                // Servers that ignore `stop_token_ids` (llama-cpp-python) go on
                // past a stop token; the sample ends before it, as locally.
                if let Some(end) = ids.iter().position(|t| params.stop_ids.contains(t)) {
                    ids.truncate(end);
                }
                Ok(ids)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(json: serde_json::Value) -> CompletionChoice {
        serde_json::from_value(json).expect("choice")
    }

    #[test]
    fn vllm_prompt_logprobs_give_scores_hits_and_confidence() {
        // What vLLM returns for prompt_logprobs=1: the token itself and the top one.
        let c = choice(serde_json::json!({
            "index": 0, "text": "",
            "prompt_logprobs": [
                null,
                {"7": {"logprob": -0.5, "rank": 1, "decoded_token": "a"}},
                {"9": {"logprob": -2.0, "rank": 3, "decoded_token": "b"},
                 "4": {"logprob": -0.25, "rank": 1, "decoded_token": "c"}}
            ]
        }));
        let entries = c.prompt_logprobs.as_ref().expect("prompt_logprobs");
        let s = prompt_logprob_scores(&[1, 7, 9], entries).expect("scores");
        assert_eq!(s.logprobs, vec![-0.5, -2.0]);
        assert_eq!(s.hits, vec![true, false]);
        assert_eq!(s.top_logprobs, vec![-0.5, -0.25]);
        assert_eq!(s.top_ids, vec![7, 4]);
        assert_eq!(s.ranks, vec![1, 3]);
    }

    #[test]
    fn echoed_logprobs_give_the_same_and_left_out_ones_are_nan() {
        let c = choice(serde_json::json!({
            "index": 0, "text": "ab",
            "logprobs": {
                "tokens": ["x", "a", "b"],
                "token_logprobs": [null, -0.5, -2.0],
                "top_logprobs": [null, {"a": -0.5}, {"c": -0.25}],
                "text_offset": [0, 1, 2]
            }
        }));
        let logprobs = c.logprobs.as_ref().expect("logprobs");
        let all = echo::Echoed {
            entry: vec![Some(0), Some(1), Some(2)],
        };
        let s = echo_scores(&[1, 7, 9], logprobs, &all).expect("scores");
        assert_eq!(s.logprobs, vec![-0.5, -2.0]);
        assert_eq!(s.hits, vec![true, false]);
        assert_eq!(s.top_logprobs, vec![-0.5, -0.25]);
        // llama-cpp-python leaves its BOS out and nulls the first entry it
        // echoes: token 1 is unknown, token 2 is entry 1.
        let bos_out = echo::Echoed {
            entry: vec![None, Some(0), Some(1)],
        };
        let s = echo_scores(&[1, 7, 9], logprobs, &bos_out).expect("scores");
        assert!(s.logprobs[0].is_nan() && s.top_logprobs[0].is_nan());
        assert_eq!(s.logprobs[1], -0.5);
        // A null anywhere else is an error that names the token.
        let mut holes = logprobs.clone();
        holes.token_logprobs[2] = None;
        let err = echo_scores(&[1, 7, 9], &holes, &all).expect_err("null");
        assert!(err.contains("prompt token 2"), "{err}");
    }

    #[test]
    fn specs_round_trip_and_never_hold_a_key() {
        let spec = RemoteSpec::parse("openai:http://a:1/v1/, https://b/v1#org/m").expect("spec");
        assert_eq!(spec.endpoints, vec!["http://a:1/v1", "https://b/v1"]);
        assert_eq!(spec.model, "org/m");
        assert_eq!(spec.source(), "openai:http://a:1/v1,https://b/v1#org/m");
        let text = serde_json::to_string(&spec).expect("json");
        assert!(!text.contains("key\":\"") && text.contains("api_key_env"));
    }
}
