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

mod http;
mod keys;
mod pool;
mod spec;

use http::{Endpoint, Http, endpoints, preview};
pub use keys::{KEYRING_SERVICE, store_api_key};
pub use spec::{RemoteSpec, SPEC_FILE, is_remote};

use crate::wire::{
    CompletionChoice, CompletionRequest, CompletionResponse, ErrorBody, ModelList, Prompt,
    SamplingRequest, Stop, TokenizerFiles,
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
                    "the model's tokenizer: a folder holding tokenizer.json, or hf:ORG/NAME",
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
        let response: CompletionResponse = self
            .http
            .post(endpoint, "/completions", request)
            .map_err(|e| match e {
                // llama-cpp-python's server (0.3) validates `prompt` as text only.
                LmError::Remote(m) if m.contains("valid string") && m.contains("prompt") => {
                    remote_fix(
                        format!(
                            "{}: the server takes text prompts only, not token ids, so it cannot score or sample the exact tokens an evaluation asks for ({})",
                            endpoint.url,
                            preview(&m)
                        ),
                        "serve the model with vLLM, SGLang or `spectrum serve`, which take token-id prompts; \
                         llama-cpp-python's server does not (README, Remote models)",
                    )
                }
                e => e,
            })?;
        let mut choices = response.choices;
        choices.sort_by_key(|c| c.index);
        Ok(choices)
    }

    /// Scores of a few sequences in one request.
    fn score_request(&self, endpoint: &Endpoint, batch: Vec<Vec<u32>>) -> Result<Vec<TokenScores>> {
        // Only the prompt is wanted; servers that insist on generating get one token.
        let zero = !endpoint.one_token.load(Ordering::Relaxed);
        let mut request = CompletionRequest {
            model: self.spec.model.clone(),
            prompt: Some(Prompt::TokenBatch(batch.clone())),
            max_tokens: Some(if zero { 0 } else { 1 }),
            sampling: SamplingRequest {
                temperature: Some(0.0),
                ..SamplingRequest::default()
            },
            echo: true,
            // The top entries beyond the first are the calibration's
            // predictions (entries above 1%); 5 is the OpenAI API's limit.
            logprobs: Some(5),
            ..CompletionRequest::default()
        };
        let choices = match self.completions(endpoint, &request) {
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
            .map(|(seq, choice)| {
                scores_from_choice(seq, choice).map_err(|why| {
                    remote_fix(
                        format!("{}: {why}", endpoint.url),
                        "serve the model with vLLM, SGLang or `spectrum serve`, which return prompt \
                         log-probabilities for echo + logprobs (llama.cpp's servers do not: README, \
                         Remote models)",
                    )
                })
            })
            .collect()
    }

    fn requests_per_call(&self, items: usize) -> usize {
        let slots = self.endpoints.len() * self.spec.concurrency.max(1);
        items.div_ceil(slots).clamp(1, 16)
    }
}

/// Teacher-forced scores of `seq` from one completions choice: vLLM's
/// `prompt_logprobs` if present, else the echoed `logprobs`.
fn scores_from_choice(
    seq: &[u32],
    choice: &CompletionChoice,
) -> std::result::Result<TokenScores, String> {
    let n = seq.len().saturating_sub(1);
    let mut scores = TokenScores::with_capacity(n);
    let min_lp = spectrum_lm::engine::CALIBRATION_MIN_P.ln();
    if let Some(entries) = choice
        .prompt_logprobs
        .as_ref()
        .filter(|e| e.len() >= seq.len())
    {
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
        return Ok(scores);
    }
    let logprobs = choice
        .logprobs
        .as_ref()
        .filter(|l| l.token_logprobs.len() >= seq.len())
        .ok_or("the answer holds no log-probabilities for the prompt tokens")?;
    for (p, &token) in seq.iter().enumerate().skip(1) {
        let own = logprobs.token_logprobs[p]
            .ok_or_else(|| format!("no log-probability for prompt token {p}"))?;
        let top: Option<&BTreeMap<String, f64>> =
            logprobs.top_logprobs.get(p).and_then(Option::as_ref);
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
            totals[k] = s.logprobs[start..start + options[k].len()]
                .iter()
                .map(|&l| l as f64)
                .sum();
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
            let request = CompletionRequest {
                model: self.spec.model.clone(),
                prompt: Some(Prompt::Tokens(prompt.to_vec())),
                max_tokens: Some(params.max_tokens),
                sampling: SamplingRequest {
                    temperature: Some(params.temperature),
                    top_p: (params.top_p < 1.0).then_some(params.top_p),
                    top_k: (params.top_k > 0).then_some(params.top_k as i64),
                    n: Some(count),
                    seed: Some(params.seed.wrapping_add(start as u64 * SAMPLE_SEED_STRIDE)),
                    stop: (!params.stop_strings.is_empty())
                        .then(|| Stop::Many(params.stop_strings.clone())),
                    stop_token_ids: (!params.stop_ids.is_empty()).then(|| params.stop_ids.clone()),
                },
                ..CompletionRequest::default()
            };
            let choices = self.completions(endpoint, &request)?;
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
            .map(|text| self.tokenizer.encode(&text))
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
        let s = scores_from_choice(&[1, 7, 9], &c).expect("scores");
        assert_eq!(s.logprobs, vec![-0.5, -2.0]);
        assert_eq!(s.hits, vec![true, false]);
        assert_eq!(s.top_logprobs, vec![-0.5, -0.25]);
        assert_eq!(s.top_ids, vec![7, 4]);
        assert_eq!(s.ranks, vec![1, 3]);
    }

    #[test]
    fn echoed_logprobs_give_the_same_and_missing_ones_are_named() {
        let c = choice(serde_json::json!({
            "index": 0, "text": "ab",
            "logprobs": {
                "tokens": ["x", "a", "b"],
                "token_logprobs": [null, -0.5, -2.0],
                "top_logprobs": [null, {"a": -0.5}, {"c": -0.25}],
                "text_offset": [0, 1, 2]
            }
        }));
        let s = scores_from_choice(&[1, 7, 9], &c).expect("scores");
        assert_eq!(s.logprobs, vec![-0.5, -2.0]);
        assert_eq!(s.hits, vec![true, false]);
        assert_eq!(s.top_logprobs, vec![-0.5, -0.25]);
        let short = choice(serde_json::json!({"index": 0, "text": "", "logprobs": {
            "tokens": ["x"], "token_logprobs": [null], "top_logprobs": [null], "text_offset": [0]}}));
        let err = scores_from_choice(&[1, 7, 9], &short).expect_err("too short");
        assert!(err.contains("no log-probabilities"), "{err}");
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
