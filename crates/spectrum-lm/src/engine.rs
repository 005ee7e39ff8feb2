//! The [`LanguageModel`] trait (what evaluation needs from a model) and
//! [`LocalModel`], its implementation on a candle model in this process.
//!
//! Scoring is one forward pass per sequence: every output's loss comes from the
//! same pass. Option scoring runs the shared prompt once and scores all options
//! from its KV cache. Sampling runs the prompt once and decodes `n` samples as
//! one batch.

use candle_core::{DType, Device, IndexOp, Tensor};
use serde::{Deserialize, Serialize};
use spectrum_core::Rng;

use crate::Result;
use crate::models::{CausalLm, Mode};
use crate::template::Rendered;
use crate::tokenizer::TextTokenizer;

/// Per-token results of teacher-forced scoring. Entry `i` is about token
/// `i + 1` of the sequence (the first token is never predicted).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScores {
    pub logprobs: Vec<f32>,
    /// Whether the token is the arg-max of its predicted distribution.
    pub hits: Vec<bool>,
    /// Log-probability of the arg-max token (the model's confidence, for calibration).
    pub top_logprobs: Vec<f32>,
    /// The arg-max token.
    pub top_ids: Vec<u32>,
    /// 1 + the number of tokens more likely than this one.
    pub ranks: Vec<u32>,
    /// Every other vocabulary entry with probability above
    /// [`CALIBRATION_MIN_P`], as (id, log-probability), ids ascending: what the
    /// reference's calibration error counts as predictions (METHOD.md §6).
    pub alternatives: Vec<Vec<(u32, f32)>>,
}

/// Probabilities above this count as predictions for calibration (the
/// reference's `min_p_calibration`).
pub const CALIBRATION_MIN_P: f64 = 0.01;

impl TokenScores {
    pub fn with_capacity(n: usize) -> TokenScores {
        TokenScores {
            logprobs: Vec::with_capacity(n),
            hits: Vec::with_capacity(n),
            top_logprobs: Vec::with_capacity(n),
            top_ids: Vec::with_capacity(n),
            ranks: Vec::with_capacity(n),
            alternatives: Vec::with_capacity(n),
        }
    }
}

/// One output's summary (METHOD.md §4.1), the reference's per-example row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputScore {
    pub index: usize,
    /// The reference's example number (loss runs counted from 0); `None`
    /// where the output carries no loss.
    pub example: Option<usize>,
    /// Summed negative log-likelihood of the loss tokens; `None` where the output carries no loss.
    pub loss: Option<f64>,
    /// The fraction of loss tokens that are the arg-max (the reference's `acc`).
    pub acc: Option<f64>,
    /// 1 if every loss token is the arg-max (`all_acc`).
    pub all_acc: Option<u8>,
    /// 1 if the first loss token is the arg-max (`first_acc`).
    pub first_acc: Option<u8>,
    pub tokens: usize,
}

/// How to sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub n: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// 0: no top-k cut.
    pub top_k: usize,
    pub seed: u64,
    pub max_tokens: usize,
    /// Token ids that end a sample (not included in it).
    pub stop_ids: Vec<u32>,
    /// Strings that end a sample; the text is cut before them.
    pub stop_strings: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            n: 1,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            max_tokens: 64,
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

/// What evaluation needs from a model: [`LocalModel`] here, or a remote
/// OpenAI-compatible server (`spectrum-openai`).
pub trait LanguageModel: Send {
    /// Teacher-forced scores of each token sequence.
    fn score_tokens(&mut self, batch: &[Vec<u32>]) -> Result<Vec<TokenScores>>;
    /// Sum of log-probabilities of each option's tokens after `prompt` (no end token).
    fn option_logprobs(&mut self, prompt: &[u32], options: &[Vec<u32>]) -> Result<Vec<f64>>;
    /// `params.n` continuations of `prompt`, as token ids (stop token excluded).
    fn sample(&mut self, prompt: &[u32], params: &SamplingParams) -> Result<Vec<Vec<u32>>>;
}

/// Per-output losses of a rendered sequence from its token scores.
pub fn output_scores(rendered: &Rendered, scores: &TokenScores) -> Vec<OutputScore> {
    rendered
        .outputs
        .iter()
        .map(|span| {
            let tokens = span.end - span.start;
            if !span.loss || tokens == 0 {
                return OutputScore {
                    index: span.index,
                    example: None,
                    loss: None,
                    acc: None,
                    all_acc: None,
                    first_acc: None,
                    tokens,
                };
            }
            // Token p is scored at entry p - 1.
            let range = span.start - 1..span.end - 1;
            let loss = -scores.logprobs[range.clone()]
                .iter()
                .map(|&l| l as f64)
                .sum::<f64>();
            let hits = &scores.hits[range];
            let right = hits.iter().filter(|&&h| h).count();
            OutputScore {
                index: span.index,
                example: span.example,
                loss: Some(loss),
                acc: Some(right as f64 / tokens as f64),
                all_acc: Some((right == tokens) as u8),
                first_acc: Some(hits[0] as u8),
                tokens,
            }
        })
        .collect()
}

/// Positions turned into logits at a time when scoring.
const LOGIT_CHUNK: usize = 256;

/// A candle model and its tokenizer, in this process.
#[derive(Debug)]
pub struct LocalModel {
    pub model: CausalLm,
    pub tokenizer: TextTokenizer,
}

impl LocalModel {
    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.model.device().clone()
    }

    /// Right-pads `batch` into ids [b, T] and a key mask [b, T].
    fn pad(&self, batch: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let width = batch.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        for seq in batch {
            ids.extend(
                seq.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, width - seq.len())),
            );
            mask.extend((0..width).map(|i| (i < seq.len()) as u8 as f32));
        }
        let device = self.device();
        Ok((
            Tensor::from_vec(ids, (batch.len(), width), &device)?,
            Tensor::from_vec(mask, (batch.len(), width), &device)?,
        ))
    }
}

/// Scores of `targets` under `logits` [n, V]: vectorised passes per row (max,
/// log-sum-exp, arg-max, rank) instead of a full log-softmax tensor, with the
/// rows split across the machine's threads; CPU f32 logits are read in place.
fn gather_scores(logits: &Tensor, targets: &[u32]) -> Result<Vec<RowScore>> {
    use rayon::prelude::*;
    let vocab = logits.dim(1)?;
    let score = |flat: &[f32]| -> Vec<RowScore> {
        flat.par_chunks(vocab)
            .zip(targets.par_iter())
            .map(|(row, &target)| row_score(row, target as usize))
            .collect()
    };
    let logits = logits.contiguous()?;
    Ok(match crate::ops::host_slice(&logits, score) {
        Some(scores) => scores,
        None => score(&logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?),
    })
}

/// Refuses an empty prompt: there is nothing to score or continue.
pub fn check_prompt(prompt: &[u32]) -> Result<()> {
    if prompt.is_empty() {
        return Err(crate::LmError::EmptyPrompt);
    }
    Ok(())
}

/// One predicted position: log p(target), whether the target is the arg-max,
/// the arg-max's log-probability, and the other likely entries.
#[derive(Debug, Clone)]
struct RowScore {
    logprob: f32,
    hit: bool,
    top: f32,
    top_id: u32,
    rank: u32,
    alternatives: Vec<(u32, f32)>,
}

fn row_score(row: &[f32], target: usize) -> RowScore {
    // log p = logit - max - log_sum > ln(min p) needs logit - max > ln(min p)
    // (log_sum >= 0): those are the near entries (a little below, for rounding).
    let floor = CALIBRATION_MIN_P.ln() as f32 - 1e-3;
    let s = crate::vmath::vectorized(
        #[inline(always)]
        || crate::vmath::row_stats(row, target, floor),
    );
    let log_sum = s.sum_exp.ln();
    // At most 1/min_p entries pass.
    let cut = (s.max as f64 + log_sum + CALIBRATION_MIN_P.ln()) as f32;
    let alternatives = s
        .near
        .iter()
        .copied()
        .filter(|&i| row[i] > cut && i != target)
        .map(|i| (i as u32, (row[i] as f64 - s.max as f64 - log_sum) as f32))
        .filter(|&(_, lp)| lp as f64 > CALIBRATION_MIN_P.ln())
        .collect();
    RowScore {
        alternatives,
        logprob: (row[target] as f64 - s.max as f64 - log_sum) as f32,
        hit: s.argmax == target,
        top: -log_sum as f32,
        top_id: s.argmax as u32,
        rank: s.above_target + 1,
    }
}

impl LanguageModel for LocalModel {
    fn score_tokens(&mut self, batch: &[Vec<u32>]) -> Result<Vec<TokenScores>> {
        crate::ops::on_pool_for(&self.device(), || self.score_tokens_here(batch))
    }

    fn option_logprobs(&mut self, prompt: &[u32], options: &[Vec<u32>]) -> Result<Vec<f64>> {
        crate::ops::on_pool_for(&self.device(), || {
            self.option_logprobs_here(prompt, options)
        })
    }

    fn sample(&mut self, prompt: &[u32], params: &SamplingParams) -> Result<Vec<Vec<u32>>> {
        Ok(self
            .sample_many(&[(prompt, params)])?
            .pop()
            .unwrap_or_default())
    }
}

impl LocalModel {
    /// [`LanguageModel::score_tokens`] on the calling thread (a pool thread).
    fn score_tokens_here(&mut self, batch: &[Vec<u32>]) -> Result<Vec<TokenScores>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.model.set_mode(Mode::Inference);
        self.model.clear_kv_cache(); // a failed call may have left one
        let (ids, mask) = self.pad(batch)?;
        let hidden = self.model.forward_hidden(&ids, Some(&mask))?;
        self.model.clear_kv_cache();
        let mut out = Vec::with_capacity(batch.len());
        for (b, seq) in batch.iter().enumerate() {
            let mut scores = TokenScores::with_capacity(seq.len());
            // Logits in chunks of positions: memory stays at LOGIT_CHUNK x vocabulary.
            let mut start = 0;
            while start + 1 < seq.len() {
                let end = (start + LOGIT_CHUNK).min(seq.len() - 1);
                let logits = self.model.logits(&hidden.i((b, start..end))?)?;
                for r in gather_scores(&logits, &seq[start + 1..end + 1])? {
                    scores.logprobs.push(r.logprob);
                    scores.hits.push(r.hit);
                    scores.top_logprobs.push(r.top);
                    scores.top_ids.push(r.top_id);
                    scores.ranks.push(r.rank);
                    scores.alternatives.push(r.alternatives);
                }
                start = end;
            }
            out.push(scores);
        }
        Ok(out)
    }

    /// [`LanguageModel::option_logprobs`] on the calling thread (a pool thread).
    fn option_logprobs_here(&mut self, prompt: &[u32], options: &[Vec<u32>]) -> Result<Vec<f64>> {
        if options.is_empty() {
            return Ok(Vec::new());
        }
        check_prompt(prompt)?;
        self.model.set_mode(Mode::Inference);
        let device = self.device();
        let p = Tensor::from_vec(prompt.to_vec(), (1, prompt.len()), &device)?;
        // Only the prompt's last position predicts anything we need.
        let hidden = self.model.forward_hidden(&p, None)?;
        let last = self
            .model
            .logits(&hidden.i((0, prompt.len() - 1))?.unsqueeze(0)?)?;
        // The first token of every option is predicted by the prompt's last position.
        let firsts: Vec<u32> = options
            .iter()
            .map(|o| o.first().copied().unwrap_or(0))
            .collect();
        let last = last
            .broadcast_as((options.len(), last.dim(1)?))?
            .contiguous()?;
        let mut totals: Vec<f64> = gather_scores(&last, &firsts)?
            .iter()
            .map(|r| r.logprob as f64)
            .collect();
        let longest = options.iter().map(Vec::len).max().unwrap_or(0);
        if longest > 1 {
            self.model.expand_kv_cache(options.len())?;
            let (ids, opt_mask) = self.pad(options)?;
            let prompt_mask = Tensor::ones((options.len(), prompt.len()), DType::F32, &device)?;
            let mask = Tensor::cat(&[&prompt_mask, &opt_mask], 1)?;
            let logits = self.model.forward(&ids, Some(&mask))?;
            for (k, option) in options.iter().enumerate() {
                if option.len() > 1 {
                    let rows = logits.i((k, 0..option.len() - 1))?;
                    let scores = gather_scores(&rows, &option[1..])?;
                    totals[k] += scores.iter().map(|r| r.logprob as f64).sum::<f64>();
                }
            }
        }
        for (k, option) in options.iter().enumerate() {
            if option.is_empty() {
                totals[k] = 0.0; // the empty continuation has probability 1
            }
        }
        self.model.clear_kv_cache();
        Ok(totals)
    }

    /// Samples several prompts together, each with its own parameters: the
    /// prompts are left-padded into one batch (so every last prompt token sits
    /// in the same column, and rotary attention, which sees only relative
    /// positions, is unchanged), prefilled once each, and decoded as one batch
    /// of `sum(n)` rows. Row `i` of a request draws from `seed + i * 0x9E3779B9`,
    /// so a request split into parts with shifted seeds samples the same
    /// continuations. One request runs without any padding (the `sample` path).
    pub fn sample_many(
        &mut self,
        requests: &[(&[u32], &SamplingParams)],
    ) -> Result<Vec<Vec<Vec<u32>>>> {
        crate::ops::on_pool_for(&self.device(), || self.sample_many_here(requests))
    }

    fn sample_many_here(
        &mut self,
        requests: &[(&[u32], &SamplingParams)],
    ) -> Result<Vec<Vec<Vec<u32>>>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        for (prompt, _) in requests {
            check_prompt(prompt)?;
        }
        self.model.set_mode(Mode::Inference);
        self.model.clear_kv_cache(); // a failed call may have left one
        let device = self.device();
        let width = requests.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let padded = requests.iter().any(|r| r.0.len() < width);
        let mut ids = Vec::with_capacity(requests.len() * width);
        let mut prompt_mask = Vec::with_capacity(requests.len() * width);
        for (prompt, _) in requests {
            let pad = width - prompt.len();
            ids.extend(std::iter::repeat_n(0, pad).chain(prompt.iter().copied()));
            prompt_mask.extend((0..width).map(|i| (i >= pad) as u8 as f32));
        }
        let p = Tensor::from_vec(ids, (requests.len(), width), &device)?;
        let key_mask = Tensor::from_vec(prompt_mask, (requests.len(), width), &device)?;
        let hidden = self.model.forward_hidden(&p, padded.then_some(&key_mask))?;
        let logits = self.model.logits(&hidden.i((.., width - 1))?)?;
        // One decoding row per sample: row -> its request.
        let owner: Vec<usize> = requests
            .iter()
            .enumerate()
            .flat_map(|(r, (_, params))| std::iter::repeat_n(r, params.n.max(1)))
            .collect();
        let rows = owner.len();
        let index = Tensor::from_vec(
            owner.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            rows,
            &device,
        )?;
        let mut last = logits.index_select(&index, 0)?;
        self.model.select_kv_rows(&index)?;
        let mut mask = padded
            .then(|| key_mask.index_select(&index, 0))
            .transpose()?;
        let mut rngs = Vec::with_capacity(rows);
        for (r, (_, params)) in requests.iter().enumerate() {
            let n = owner.iter().filter(|&&o| o == r).count();
            rngs.extend((0..n).map(|i| Rng::new(params.seed.wrapping_add(i as u64 * 0x9E37_79B9))));
        }
        let mut samples: Vec<Vec<u32>> = vec![Vec::new(); rows];
        let mut done = vec![false; rows];
        let steps = requests.iter().map(|r| r.1.max_tokens).max().unwrap_or(0);
        for _ in 0..steps {
            let logits: Vec<Vec<f32>> = last.to_dtype(DType::F32)?.to_vec2()?;
            for (i, (_, params)) in owner.iter().map(|&r| requests[r]).enumerate() {
                if samples[i].len() >= params.max_tokens {
                    done[i] = true;
                }
            }
            // Each row draws from its own generator: the rows in parallel
            // (a softmax over the vocabulary each) draw what they would in turn.
            let draw = |(i, (row, rng)): (usize, (&Vec<f32>, &mut Rng))| {
                (!done[i]).then(|| sample_token(row, requests[owner[i]].1, rng))
            };
            let drawn: Vec<Option<u32>> = {
                use rayon::prelude::*;
                logits
                    .par_iter()
                    .zip(rngs.par_iter_mut())
                    .enumerate()
                    .map(draw)
                    .collect()
            };
            let mut next = Vec::with_capacity(rows);
            for (i, token) in drawn.into_iter().enumerate() {
                let params = requests[owner[i]].1;
                let Some(token) = token else {
                    next.push(0);
                    continue;
                };
                if params.stop_ids.contains(&token) {
                    done[i] = true;
                } else {
                    samples[i].push(token);
                    done[i] = self.hits_stop_string(&samples[i], params)?;
                }
                next.push(token);
            }
            if done.iter().all(|&d| d) {
                break;
            }
            if let Some(m) = &mask {
                mask = Some(Tensor::cat(
                    &[m, &Tensor::ones((rows, 1), DType::F32, &device)?],
                    1,
                )?);
            }
            let ids = Tensor::from_vec(next, (rows, 1), &device)?;
            last = self.model.forward(&ids, mask.as_ref())?.squeeze(1)?;
        }
        self.model.clear_kv_cache();
        let mut out: Vec<Vec<Vec<u32>>> = vec![Vec::new(); requests.len()];
        for (sample, r) in samples.into_iter().zip(owner) {
            out[r].push(sample);
        }
        Ok(out)
    }

    fn hits_stop_string(&self, sample: &[u32], params: &SamplingParams) -> Result<bool> {
        if params.stop_strings.is_empty() {
            return Ok(false);
        }
        let text = self.tokenizer.decode(sample)?;
        Ok(params
            .stop_strings
            .iter()
            .any(|s| text.contains(s.as_str())))
    }
}

/// Draws one token id from `logits` with temperature, top-k and top-p.
pub fn sample_token(logits: &[f32], params: &SamplingParams, rng: &mut Rng) -> u32 {
    if params.temperature <= 0.0 {
        return argmax(logits);
    }
    let t = params.temperature as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let probs: Vec<f32> = logits.iter().map(|&l| ((l - max) / t).exp()).collect();
    if params.top_k == 0 && params.top_p >= 1.0 {
        // Plain sampling: no need to sort the vocabulary.
        let weights: Vec<f64> = probs.iter().map(|&p| p as f64).collect();
        return rng.weighted(&weights) as u32;
    }
    let mut order: Vec<(u32, f32)> = probs
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i as u32, p))
        .collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    if params.top_k > 0 {
        order.truncate(params.top_k);
    }
    let total: f32 = order.iter().map(|x| x.1).sum();
    if params.top_p < 1.0 {
        let mut acc = 0.0;
        let keep = order
            .iter()
            .position(|x| {
                acc += x.1 / total;
                acc >= params.top_p as f32
            })
            .map_or(order.len(), |i| i + 1);
        order.truncate(keep);
    }
    let weights: Vec<f64> = order.iter().map(|x| x.1 as f64).collect();
    order[rng.weighted(&weights)].0
}

fn argmax(xs: &[f32]) -> u32 {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as u32)
}
