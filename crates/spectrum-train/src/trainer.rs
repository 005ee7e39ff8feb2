//! The training loop (METHOD.md §3): micro-batches -> loss over loss-flagged
//! tokens only -> gradients accumulated over the effective batch -> global
//! norm clipping -> AdamW at the scheduled learning rate. Held-out loss on
//! outputs with index >= 1 (§4.1) at fixed intervals; checkpoints with the
//! optimizer state and the data cursor, from which [`train`] resumes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use spectrum_core::Problem;
use spectrum_lm::engine::output_scores;
use spectrum_lm::hf::ModelDir;
use spectrum_lm::lora::AdapterSite;
use spectrum_lm::models::{CausalLm, Mode};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{Backend, LanguageModel, LocalModel, PromptFormat, Rendered};
use spectrum_suite::{Message, Rng};

use crate::checkpoint::{self, Checkpoint, State};
use crate::data::{Cursor, EpochPlan, Item, SourceSequence, plan_epoch};
use crate::optim::{AdamW, clip_grad_norm};
use crate::spec::{Length, Method, RunSpec};
use crate::{Result, TrainError};

/// One optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    /// Mean cross-entropy over the step's loss tokens.
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Loss tokens in the step.
    pub tokens: usize,
    /// All tokens processed per second (context included).
    pub tokens_per_s: f64,
    /// Seconds of training so far, over every session of the run.
    pub elapsed_s: f64,
}

/// Mean held-out loss and accuracy over outputs with index >= 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub step: usize,
    pub loss: f64,
    pub acc: f64,
    pub outputs: usize,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        start_step: usize,
        total_steps: usize,
        trainable_parameters: usize,
        train_sequences: usize,
        batches_per_epoch: usize,
    },
    Step(StepMetrics),
    Eval(EvalMetrics),
    Checkpoint {
        step: usize,
        path: PathBuf,
    },
}

/// What a training job needs: the settings, the model, the data, and a folder.
#[derive(Debug, Clone, Copy)]
pub struct TrainJob<'a> {
    pub spec: &'a RunSpec,
    pub model_dir: &'a Path,
    pub train: &'a [SourceSequence],
    /// The fixed held-out sample, scored as stored (no shuffling).
    pub held_out: &'a [Vec<Message>],
    /// Checkpoints go to `run_dir/checkpoints`; a checkpoint there is resumed from.
    pub run_dir: &'a Path,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub step: usize,
    pub total_steps: usize,
    pub cancelled: bool,
    /// The newest checkpoint (the trained weights).
    pub checkpoint: PathBuf,
}

/// A batch as the model takes it.
struct BatchTensors {
    ids: Tensor,
    mask: Option<Tensor>,
    /// Flat positions (batch x width) whose next token carries loss.
    rows: Tensor,
    targets: Vec<u32>,
    loss_tokens: usize,
    tokens: usize,
}

/// The summed NLL of a batch's loss tokens from the final hidden states: only
/// the positions that predict a loss token become logits.
fn nll_of(model: &CausalLm, hidden: &Tensor, b: &BatchTensors) -> spectrum_lm::Result<Tensor> {
    let (batch, width, hidden_size) = hidden.dims3()?;
    let selected = hidden
        .reshape((batch * width, hidden_size))?
        .index_select(&b.rows, 0)?;
    let logits = model.logits(&selected)?.to_dtype(DType::F32)?;
    Ok(spectrum_lm::ops::cross_entropy_rows(&logits, &b.targets)?.sum_all()?)
}

/// A model ready to train: the network, its tokenizer, and what trains.
#[derive(Debug)]
pub struct Trainable {
    pub lm: LocalModel,
    pub names: Vec<String>,
    pub vars: Vec<Var>,
    /// Recompute each decoder layer in the backward pass (the run's
    /// `gradient_checkpointing`).
    pub checkpointing: bool,
}

impl Trainable {
    /// Loads `model_dir` for `spec.method`: LoRA adapters (A drawn from the
    /// seed, B = 0) over frozen weights, or every weight trainable.
    pub fn load(spec: &RunSpec, model_dir: &Path) -> Result<Trainable> {
        let md = ModelDir::open(model_dir)?;
        let device = spec.device.device()?;
        let dtype = spec.dtype();
        let tensors = md.load_tensors(dtype, &device)?;
        let tokenizer = TextTokenizer::from_dir(&md.dir)?;
        let varmap = VarMap::new();
        // Rows of tokens added to the model (METHOD.md §2) train with the adapter:
        // they start as the base's rows.
        let token_rows = spectrum_lm::added_tokens::AddedTokens::read(&md.dir)?.map(|a| a.ids());
        let mut initial_rows: Vec<(&str, Tensor)> = Vec::new();
        let model = match &spec.method {
            Method::Lora(cfg) => {
                if let Some(rows) = &token_rows {
                    let embed = "model.embed_tokens.weight";
                    for (var, weight) in [
                        (spectrum_lm::lora::EMBED_ROWS, embed),
                        (spectrum_lm::lora::HEAD_ROWS, "lm_head.weight"),
                    ] {
                        if let Some(w) = tensors.get(weight) {
                            initial_rows.push((var, w.narrow(0, rows.start, rows.len())?));
                        }
                    }
                }
                let site = AdapterSite {
                    config: cfg,
                    vb: VarBuilder::from_varmap(&varmap, dtype, &device),
                    token_rows: token_rows.clone(),
                };
                let vb = VarBuilder::from_tensors(tensors, dtype, &device);
                CausalLm::load(&md.config, vb, Some(&site))?
            }
            Method::Full => {
                {
                    let mut data = varmap.data().lock().map_err(|_| poisoned())?;
                    for (name, t) in tensors {
                        data.insert(name, Var::from_tensor(&t)?);
                    }
                }
                CausalLm::load(
                    &md.config,
                    VarBuilder::from_varmap(&varmap, dtype, &device),
                    None,
                )?
            }
        };
        let mut named: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, rows) in &initial_rows {
            if let Some((_, var)) = named.iter().find(|(n, _)| n == name) {
                var.set(rows)?;
            }
        }
        if let Method::Lora(_) = spec.method {
            // candle's initialiser draws from an unseeded generator: redraw A
            // (kaiming-uniform bound 1/sqrt(in), as PEFT) from the run's seed.
            for (name, var) in named.iter().filter(|(n, _)| n.contains("lora_A")) {
                let (r, fan_in) = var.dims2()?;
                let bound = 1.0 / (fan_in as f64).sqrt();
                let mut rng = Rng::derive(spec.seed, name);
                let values: Vec<f32> = (0..r * fan_in)
                    .map(|_| ((rng.f64() * 2.0 - 1.0) * bound) as f32)
                    .collect();
                var.set(&Tensor::from_vec(values, (r, fan_in), &device)?.to_dtype(dtype)?)?;
            }
        }
        if named.is_empty() {
            return Err(Problem::setting(
                "nothing to train: no LoRA target module exists in this model",
                "method",
                "LoRA targets the model has (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), or full fine-tuning",
            )
            .into());
        }
        let (names, vars) = named.into_iter().unzip();
        Ok(Trainable {
            lm: LocalModel { model, tokenizer },
            names,
            vars,
            checkpointing: spec.gradient_checkpointing,
        })
    }

    pub fn parameters(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// The trainable tensors by name (PEFT names for LoRA, checkpoint names otherwise).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.names
            .iter()
            .cloned()
            .zip(self.vars.iter().map(|v| v.as_tensor().clone()))
            .collect()
    }

    /// Summed negative log-likelihood of the loss-flagged tokens of `batch`
    /// (a graph to backpropagate through), its loss-token and all-token counts.
    pub fn batch_nll(&mut self, batch: &[Item]) -> Result<(Tensor, usize, usize)> {
        let b = self.batch_tensors(batch)?;
        let hidden = self.lm.model.forward_hidden(&b.ids, b.mask.as_ref())?;
        Ok((
            nll_of(&self.lm.model, &hidden, &b)?,
            b.loss_tokens,
            b.tokens,
        ))
    }

    /// The model's inputs for `batch`: ids padded to the longest item, the
    /// key mask when there is padding, and the rows that predict loss tokens.
    fn batch_tensors(&self, batch: &[Item]) -> Result<BatchTensors> {
        let device = self.lm.model.device().clone();
        let width = batch.iter().map(|i| i.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for (b, item) in batch.iter().enumerate() {
            let n = item.ids.len();
            ids.extend(
                item.ids
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, width - n)),
            );
            mask.extend((0..width).map(|i| (i < n) as u8 as f32));
            for p in 1..n {
                if item.loss[p] {
                    // Token p is predicted by position p - 1.
                    rows.push((b * width + p - 1) as u32);
                    targets.push(item.ids[p]);
                }
            }
        }
        let tokens: usize = batch.iter().map(|i| i.ids.len()).sum();
        let padded = tokens < batch.len() * width;
        let loss_tokens = rows.len();
        Ok(BatchTensors {
            ids: Tensor::from_vec(ids, (batch.len(), width), &device)?,
            mask: padded
                .then(|| Tensor::from_vec(mask, (batch.len(), width), &device))
                .transpose()?,
            rows: Tensor::from_vec(rows, loss_tokens, &device)?,
            targets,
            loss_tokens,
            tokens,
        })
    }

    /// The gradients of `nll / scale` over `batch` and the summed NLL: an
    /// ordinary backward pass, or a checkpointed one (each decoder layer
    /// recomputed in the backward pass) when the run asks for it.
    fn batch_gradients(&mut self, batch: &[Item], scale: f64) -> Result<(f64, usize, GradStore)> {
        if !self.checkpointing {
            let (nll, _, tokens) = self.batch_nll(batch)?;
            let value = nll.to_scalar::<f32>()? as f64;
            return Ok((value, tokens, (nll / scale)?.backward()?));
        }
        let b = self.batch_tensors(batch)?;
        let mut value = 0.0;
        let (_, store) = self.lm.model.backward_checkpointed(
            &b.ids,
            b.mask.as_ref(),
            &mut |model, hidden| {
                let nll = nll_of(model, hidden, &b)?;
                value = nll.to_scalar::<f32>()? as f64;
                Ok((nll / scale)?)
            },
        )?;
        Ok((value, b.tokens, store))
    }

    /// One optimiser step over the micro-batches `micro` (the effective batch):
    /// the loss is the mean over all their loss tokens, gradients accumulate
    /// across micro-batches, are clipped to `max_norm`, and AdamW updates at
    /// `lr`. `None` (nothing changed) when `cancel` was set before a micro-batch.
    /// On the CPU the step runs on a thread of the compute pool
    /// (`spectrum_lm::ops::on_pool_for`).
    pub fn step(
        &mut self,
        opt: &mut AdamW,
        micro: &[Vec<Item>],
        lr: f64,
        max_norm: f64,
        max_batch_tokens: usize,
        cancel: &AtomicBool,
    ) -> Result<Option<StepDone>> {
        let device = self.lm.device();
        spectrum_lm::ops::on_pool_for(&device, || {
            let loss_tokens: usize = micro.iter().flatten().map(Item::loss_tokens).sum();
            let mut grads: Vec<Option<Tensor>> = vec![None; self.vars.len()];
            let (mut nll_total, mut tokens) = (0.0, 0);
            let pieces = micro
                .iter()
                .flat_map(|b| split_by_tokens(b, max_batch_tokens));
            for batch in pieces {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let (nll, n_tokens, store) = self.batch_gradients(batch, loss_tokens as f64)?;
                nll_total += nll;
                tokens += n_tokens;
                for (slot, var) in grads.iter_mut().zip(&self.vars) {
                    if let Some(g) = store.get(var.as_tensor()) {
                        *slot = Some(match slot.take() {
                            Some(acc) => crate::optim::accumulate(acc, g)?,
                            None => g.clone(),
                        });
                    }
                }
            }
            let mut grads: Vec<Tensor> = grads
                .into_iter()
                .zip(&self.vars)
                .map(|(g, v)| g.map_or_else(|| v.as_tensor().zeros_like(), Ok))
                .collect::<candle_core::Result<_>>()?;
            let grad_norm = clip_grad_norm(&mut grads, max_norm)?;
            opt.step(&self.vars, &grads, lr)?;
            Ok(Some(StepDone {
                loss: nll_total / loss_tokens.max(1) as f64,
                grad_norm,
                loss_tokens,
                tokens,
            }))
        })
    }

    /// Held-out loss and accuracy over outputs with index >= 1 (METHOD.md §4.1);
    /// `None` when `cancel` was set before a batch.
    pub fn evaluate(
        &mut self,
        sample: &[Rendered],
        batch: usize,
        step: usize,
        cancel: &AtomicBool,
    ) -> Result<Option<EvalMetrics>> {
        let (mut loss, mut acc, mut outputs) = (0.0, 0.0, 0usize);
        for chunk in sample.chunks(batch.max(1)) {
            if cancel.load(Ordering::Relaxed) {
                self.lm.model.set_mode(Mode::Training);
                return Ok(None);
            }
            let ids: Vec<Vec<u32>> = chunk.iter().map(|r| r.ids.clone()).collect();
            let scores = self.lm.score_tokens(&ids)?;
            for (rendered, s) in chunk.iter().zip(&scores) {
                for o in output_scores(rendered, s) {
                    // Accuracy here: every token of the output right (`all_acc`).
                    if let (true, Some(l), Some(a)) = (o.index >= 1, o.loss, o.all_acc) {
                        loss += l;
                        acc += a as f64;
                        outputs += 1;
                    }
                }
            }
        }
        self.lm.model.set_mode(Mode::Training);
        let n = outputs.max(1) as f64;
        Ok(Some(EvalMetrics {
            step,
            loss: loss / n,
            acc: acc / n,
            outputs,
        }))
    }
}

/// Consecutive pieces of `batch` whose padded size (sequences x longest) stays
/// within `max_tokens` (a single longer sequence is a piece of its own).
pub fn split_by_tokens(batch: &[Item], max_tokens: usize) -> Vec<&[Item]> {
    let mut pieces = Vec::new();
    let (mut start, mut longest) = (0, 0);
    for (i, item) in batch.iter().enumerate() {
        let widest = longest.max(item.ids.len());
        if i > start && widest * (i + 1 - start) > max_tokens {
            pieces.push(&batch[start..i]);
            start = i;
            longest = item.ids.len();
        } else {
            longest = widest;
        }
    }
    if start < batch.len() {
        pieces.push(&batch[start..]);
    }
    pieces
}

/// What one optimiser step did.
#[derive(Debug, Clone, Copy)]
pub struct StepDone {
    /// Mean cross-entropy over the loss tokens.
    pub loss: f64,
    pub grad_norm: f64,
    pub loss_tokens: usize,
    /// All tokens (context included).
    pub tokens: usize,
}

fn poisoned() -> TrainError {
    TrainError::Poisoned
}

/// The micro-batches in training order, epoch after epoch.
struct Stream<'a> {
    sources: &'a [SourceSequence],
    tok: TextTokenizer,
    spec: &'a RunSpec,
    plan: EpochPlan,
    cursor: Cursor,
}

impl<'a> Stream<'a> {
    fn new(sources: &'a [SourceSequence], tok: TextTokenizer, spec: &'a RunSpec) -> Result<Self> {
        let plan = Self::plan(sources, &tok, spec, 0)?;
        if plan.batches.is_empty() {
            return Err(Problem::setting(
                "no training sequence has a loss token: every sequence is empty or cut away by the token budget",
                "max_tokens",
                "a larger token budget per sequence, or check the tasks",
            )
            .into());
        }
        Ok(Stream {
            sources,
            tok,
            spec,
            plan,
            cursor: Cursor::default(),
        })
    }

    fn plan(
        sources: &[SourceSequence],
        tok: &TextTokenizer,
        spec: &RunSpec,
        epoch: usize,
    ) -> Result<EpochPlan> {
        plan_epoch(sources, tok, spec, epoch)
    }

    fn seek(&mut self, cursor: Cursor) -> Result<()> {
        if cursor.epoch != self.plan.epoch {
            self.plan = Self::plan(self.sources, &self.tok, self.spec, cursor.epoch)?;
        }
        self.cursor = cursor;
        Ok(())
    }

    fn next(&mut self) -> Result<Vec<Item>> {
        if self.cursor.batch >= self.plan.batches.len() {
            self.seek(Cursor {
                epoch: self.cursor.epoch + 1,
                batch: 0,
            })?;
        }
        let batch = self.plan.batches[self.cursor.batch].clone();
        self.cursor.batch += 1;
        Ok(batch)
    }
}

/// Optimiser steps of a run whose epoch holds `batches_per_epoch` micro-batches.
fn total_steps(spec: &RunSpec, batches_per_epoch: usize) -> usize {
    match spec.length {
        Length::Steps(n) => n,
        Length::Epochs(e) => {
            ((e * batches_per_epoch as f64) / spec.grad_accum as f64).ceil() as usize
        }
    }
    .max(1)
}

/// Every micro-batch a run trains on, grouped by optimiser step, in the order
/// [`train`] consumes them (the same stream: epochs re-planned by seed).
pub fn planned_steps(
    sources: &[SourceSequence],
    tok: &TextTokenizer,
    spec: &RunSpec,
) -> Result<Vec<Vec<Vec<Item>>>> {
    spec.validate()?;
    let mut stream = Stream::new(sources, tok.clone(), spec)?;
    let total = total_steps(spec, stream.plan.batches.len());
    (0..total)
        .map(|_| (0..spec.grad_accum).map(|_| stream.next()).collect())
        .collect()
}

/// Runs (or resumes) the job until its last step or until `cancel` is set,
/// checked before every micro-batch. A cancelled run stops within one step
/// and saves a checkpoint of the last completed step.
pub fn train(
    job: &TrainJob,
    events: &mut dyn FnMut(Event) -> Result<()>,
    cancel: &AtomicBool,
) -> Result<Outcome> {
    let spec = job.spec;
    spec.validate()?;
    // The run's kernels and frozen products on this thread for the run, then
    // the caller's again.
    struct Restore(spectrum_lm::ops::Kernels, spectrum_lm::ops::FrozenMatmul);
    impl Drop for Restore {
        fn drop(&mut self) {
            spectrum_lm::ops::set_kernels(self.0);
            spectrum_lm::ops::set_frozen_matmul(self.1);
        }
    }
    let _restore = Restore(
        spectrum_lm::ops::set_kernels(spec.kernels),
        spectrum_lm::ops::set_frozen_matmul(spec.frozen_matmul),
    );
    let mut model = Trainable::load(spec, job.model_dir)?;
    model.lm.model.set_mode(Mode::Training);
    let mut stream = Stream::new(job.train, model.lm.tokenizer.clone(), spec)?;
    let batches_per_epoch = stream.plan.batches.len();
    let total_steps = total_steps(spec, batches_per_epoch);
    let mut opt = AdamW::new(&model.vars, spec.weight_decay)?;
    let checkpoints = job.run_dir.join("checkpoints");
    let mut step = 0;
    let mut elapsed = 0.0;
    let mut last_checkpoint = None;
    if let Some(ckpt) = checkpoint::latest(&checkpoints)? {
        let state = ckpt.restore(&model.names, &model.vars, &mut opt, &spec.hash())?;
        step = state.step;
        elapsed = state.elapsed_s;
        stream.seek(state.cursor)?;
        last_checkpoint = Some(ckpt.dir);
    }
    events(Event::Started {
        start_step: step,
        total_steps,
        trainable_parameters: model.parameters(),
        train_sequences: job.train.len(),
        batches_per_epoch,
    })?;
    let held_out: Vec<Rendered> = job
        .held_out
        .iter()
        .map(|m| {
            spectrum_lm::template::render(
                &model.lm.tokenizer,
                PromptFormat::Spectrum,
                m,
                Some(spec.max_tokens),
            )
        })
        .collect::<spectrum_lm::Result<_>>()?;
    let evaluate = |model: &mut Trainable, step: usize| -> Result<Option<EvalMetrics>> {
        if held_out.is_empty() {
            return Ok(None);
        }
        model.evaluate(&held_out, spec.micro_batch, step, cancel)
    };
    if step == 0
        && let Some(m) = evaluate(&mut model, 0)?
    {
        events(Event::Eval(m))?;
    }
    let save = |model: &Trainable, opt: &AdamW, step: usize, cursor: Cursor, elapsed: f64| {
        let state = State {
            step,
            cursor,
            adam_t: opt.t,
            elapsed_s: elapsed,
            spec_hash: spec.hash(),
        };
        checkpoint::save(
            &checkpoints,
            &model.tensors(),
            &opt.state(&model.names, &model.vars)?,
            &state,
            spec.keep_checkpoints,
        )
    };
    let mut cancelled = false;
    while step < total_steps {
        let started = Instant::now();
        let cursor_before = stream.cursor;
        let mut micro = Vec::with_capacity(spec.grad_accum);
        for _ in 0..spec.grad_accum {
            micro.push(stream.next()?);
        }
        let lr = spec.lr_at(step + 1, total_steps);
        let Some(done) = model.step(
            &mut opt,
            &micro,
            lr,
            spec.max_grad_norm,
            spec.max_batch_tokens,
            cancel,
        )?
        else {
            stream.cursor = cursor_before;
            cancelled = true;
            break;
        };
        step += 1;
        let seconds = started.elapsed().as_secs_f64();
        elapsed += seconds;
        events(Event::Step(StepMetrics {
            step,
            loss: done.loss,
            lr,
            grad_norm: done.grad_norm,
            tokens: done.loss_tokens,
            tokens_per_s: done.tokens as f64 / seconds.max(1e-9),
            elapsed_s: elapsed,
        }))?;
        if !done.loss.is_finite() {
            return Err(Problem::setting(
                format!("the loss became {} at step {step}", done.loss),
                "learning_rate",
                "a lower learning rate, or f32 weights",
            )
            .into());
        }
        if (step % spec.eval_every == 0 || step == total_steps)
            && let Some(m) = evaluate(&mut model, step)?
        {
            events(Event::Eval(m))?;
        }
        if step % spec.checkpoint_every == 0 || step == total_steps {
            let path = save(&model, &opt, step, stream.cursor, elapsed)?;
            events(Event::Checkpoint {
                step,
                path: path.clone(),
            })?;
            last_checkpoint = Some(path);
        }
    }
    let at_checkpoint = last_checkpoint
        .as_ref()
        .and_then(|p| Checkpoint::step_of(p))
        == Some(step);
    if !at_checkpoint {
        let path = save(&model, &opt, step, stream.cursor, elapsed)?;
        events(Event::Checkpoint {
            step,
            path: path.clone(),
        })?;
        last_checkpoint = Some(path);
    }
    Ok(Outcome {
        step,
        total_steps,
        cancelled,
        checkpoint: last_checkpoint.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(len: usize) -> Item {
        Item {
            ids: vec![1; len],
            loss: vec![true; len],
        }
    }

    #[test]
    fn micro_batches_split_by_padded_tokens() {
        let batch: Vec<Item> = [100, 200, 300, 900, 1000].map(item).to_vec();
        let lens = |pieces: Vec<&[Item]>| -> Vec<Vec<usize>> {
            pieces
                .iter()
                .map(|p| p.iter().map(|i| i.ids.len()).collect())
                .collect()
        };
        assert_eq!(
            lens(split_by_tokens(&batch, 1000)),
            vec![vec![100, 200, 300], vec![900], vec![1000]]
        );
        assert_eq!(lens(split_by_tokens(&batch, 10_000)).len(), 1);
        assert_eq!(
            lens(split_by_tokens(&batch, 10)).len(),
            5,
            "one long sequence per piece"
        );
    }
}
