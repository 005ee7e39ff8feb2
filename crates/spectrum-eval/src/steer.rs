//! In-context steerability (METHOD.md §4.1), computed as tsor13/spectrum @
//! 5a33588 computes it (METHOD.md §6; README, "Conformance"): sequences of
//! examples of one held-out task, each scored in one forward pass, so the
//! loss of example j is conditioned on examples 0..j-1.
//!
//! - Examples are numbered by contiguous runs of loss tokens: without a
//!   description the first output of the spectrum and chat formats carries no
//!   loss, so there the second output is example 0.
//! - k is chosen once per task with one fixed tokenizer in the spectrum format
//!   within `Settings::budget` tokens ([`select`]), whatever model and format
//!   is scored, so every run of a comparison scores the same sequences up to
//!   the same example k.
//! - Per example: summed loss, `acc` (token mean), `all_acc`, `first_acc`;
//!   summaries are plain means over examples with the reference's pooled
//!   standard error, and beside it ours over sequences.
//! - Calibration: [`crate::metrics::reference_ece`] over every vocabulary entry
//!   above 1% at each loss token.

use serde::{Deserialize, Serialize};
use spectrum_core::Problem;
use spectrum_lm::engine::output_scores;
use spectrum_lm::template::{self, PromptFormat, Rendered};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_suite::{Message, Role};

use crate::metrics::{MeanSe, mean_se, reference_ece};
use crate::{EvalError, Evaluator, Progress, Result, Settings, sample_indices};

/// One sequence of a task, with a stable id to pair runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSequence {
    pub id: String,
    pub messages: Vec<Message>,
}

/// One scored output: the reference's per-example row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SteerOutput {
    pub sequence: String,
    /// Position among the sequence's outputs (0-based).
    pub index: usize,
    /// The reference's example number (`None`: the output carries no loss).
    #[serde(default)]
    pub example: Option<usize>,
    /// Summed NLL of the output's loss tokens (end of turn included).
    pub loss: Option<f64>,
    /// Fraction of the loss tokens that are the arg-max.
    pub acc: Option<f64>,
    /// 1 if every loss token is the arg-max.
    #[serde(default)]
    pub all_acc: Option<u8>,
    /// 1 if the first loss token is the arg-max.
    #[serde(default)]
    pub first_acc: Option<u8>,
    pub tokens: usize,
}

/// One point of the steerability curve: example j over all sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CurvePoint {
    /// The example number j (j examples precede it in context).
    pub index: usize,
    pub loss: MeanSe,
    pub acc: MeanSe,
}

/// A task's steerability summary: the reference's figures (over examples
/// with number >= 1, pooled standard errors) and ours beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SteerSummary {
    pub task: String,
    /// The number of the last example scored: sequences hold examples 0..=k.
    pub k: usize,
    pub sequences: usize,
    /// `eval/loss_geq_1`: mean loss of examples 1..=k, standard error over
    /// those examples (pandas `sem`).
    pub loss: MeanSe,
    /// Ours: the standard error of `loss` over per-sequence means (the
    /// examples of one sequence are not independent).
    #[serde(default)]
    pub loss_se_sequences: Option<f64>,
    /// `eval/acc_geq_1`: per-example fraction of arg-max tokens.
    pub acc: MeanSe,
    /// `eval/all_acc_geq_1`: every token of the example is the arg-max.
    #[serde(default)]
    pub all_acc: Option<MeanSe>,
    /// `eval/first_acc_geq_1`: the example's first token is the arg-max.
    #[serde(default)]
    pub first_acc: Option<MeanSe>,
    /// `eval/loss`: mean loss of every example, example 0 included.
    #[serde(default)]
    pub loss_all: Option<MeanSe>,
    /// `calibration/ece`: every example's loss tokens.
    pub ece: Option<f64>,
    /// `calibration/geq1.ece`: examples 1..=k.
    #[serde(default)]
    pub ece_geq_1: Option<f64>,
    /// The tokenizer k was measured with.
    #[serde(default)]
    pub k_tokenizer: Option<String>,
    pub curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteerResult {
    pub summary: SteerSummary,
    pub outputs: Vec<SteerOutput>,
}

/// The tokenizer that measures k for every model and format (the reference
/// uses gemma-3-1b-it's), and its name for the record.
#[derive(Debug, Clone)]
pub struct KTokenizer {
    pub tokenizer: TextTokenizer,
    pub name: String,
}

/// How far a sequence reaches within `limit` tokens in the spectrum format
/// with `tok`: the number of its last example whose loss tokens all lie in
/// the first `limit` tokens, as the reference's `get_max_example_ind`
/// computes it (the largest example number present, minus one when the last
/// token kept carries loss). `None`: no loss token fits (the reference drops
/// the sequence).
pub fn reach(tok: &TextTokenizer, messages: &[Message], limit: usize) -> Result<Option<i64>> {
    let r = template::render(tok, PromptFormat::Spectrum, messages, Some(limit))?;
    let last = r.outputs.iter().filter_map(|o| o.example).max();
    if r.truncated > 0 {
        // Cut inside a later example: a partly kept example counts one less,
        // which leaves the last whole one; a cut before its loss leaves it
        // too. Whole examples end exactly at the limit when the format has no
        // separator after an output (Llama 3): then the last token kept
        // carries loss and the reference counts one less.
        let at_limit_on_loss = r.ids.len() == limit && r.loss.last() == Some(&true);
        return Ok(last
            .map(|e| e as i64 - at_limit_on_loss as i64)
            .or_else(|| {
                // No whole example fits: the reference keeps the sequence (reach
                // -1) when loss tokens of the cut example fall inside the limit.
                partial_loss_within(tok, messages, limit).then_some(-1)
            }));
    }
    let Some(last) = last else { return Ok(None) };
    // Whole sequence within the limit. The reference appends the end-of-
    // sequence token (no loss) unless the text already ends with it.
    let eos = tok.eos_token.as_deref().and_then(|t| tok.token_id(t));
    let appended = eos.is_some() && r.ids.last().copied() != eos && r.ids.len() < limit;
    let last_is_loss = !appended && r.loss.last().copied().unwrap_or(false);
    Ok(Some(last as i64 - last_is_loss as i64))
}

fn partial_loss_within(tok: &TextTokenizer, messages: &[Message], limit: usize) -> bool {
    template::render(tok, PromptFormat::Spectrum, messages, None)
        .map(|r| r.loss.iter().take(limit).any(|&l| l))
        .unwrap_or(false)
}

/// The reference's k rule (`get_example_k`) on the sequences' reaches: the
/// k in 1..=max maximising k x #(reach >= k), the smaller k on ties; the kept
/// sequences are those that reach k. A best k of 1 or less becomes 2 when at
/// least 10 sequences reach 2 (then those are kept; the reference keeps the
/// ones reaching its best k and fails on those without example 2).
/// `None`: not enough sequences.
pub fn choose_k(reach: &[Option<i64>]) -> Option<(usize, Vec<usize>)> {
    let max = reach.iter().flatten().copied().max().unwrap_or(0);
    let (mut best_k, mut best) = (-1i64, -1i64);
    for k in 1..=max {
        let n = reach.iter().flatten().filter(|&&r| r >= k).count() as i64;
        if k * n > best {
            (best_k, best) = (k, k * n);
        }
    }
    let mut k = best_k;
    if k <= 1 {
        if reach.iter().flatten().filter(|&&r| r >= 2).count() < 10 {
            return None;
        }
        k = 2;
    }
    let keep = (0..reach.len())
        .filter(|&i| reach[i].is_some_and(|r| r >= k))
        .collect();
    Some((k as usize, keep))
}

/// The first `n` outputs of `messages` with what precedes them.
pub fn first_examples(messages: &[Message], n: usize) -> Vec<Message> {
    let mut out = Vec::new();
    let mut outputs = 0;
    for m in messages {
        if outputs == n {
            break;
        }
        out.push(m.clone());
        outputs += (m.role == Role::Output) as usize;
    }
    out
}

/// A sequence rendered in the evaluated format and cut right after example
/// k's last token (`truncate_to_fixed_examples`). Example k is at most output
/// k + 1, so only the outputs up to it are rendered.
pub fn render_to_example(
    tok: &TextTokenizer,
    format: PromptFormat,
    messages: &[Message],
    k: usize,
) -> Result<Option<Rendered>> {
    let mut r = template::render(tok, format, &first_examples(messages, k + 2), None)?;
    let Some(end) = r
        .outputs
        .iter()
        .find(|o| o.example == Some(k))
        .map(|o| o.end)
    else {
        return Ok(None);
    };
    r.ids.truncate(end);
    r.loss.truncate(end);
    r.outputs.retain(|o| o.end <= end);
    Ok(Some(r))
}

/// k and the scored sequences of a task: k by the rule with `k_tok`, then up
/// to `settings.max_sequences` of the sequences that reach it, in an order
/// chosen by seed, rendered in `format` with `tok` up to example k.
pub fn prepare(
    tok: &TextTokenizer,
    k_tok: &TextTokenizer,
    format: PromptFormat,
    task: &str,
    sequences: &[EvalSequence],
    settings: &Settings,
) -> Result<(usize, Vec<(String, Rendered)>)> {
    let reaches = sequences
        .iter()
        .map(|s| reach(k_tok, &s.messages, settings.budget))
        .collect::<Result<Vec<_>>>()?;
    let (k, keep) = choose_k(&reaches).ok_or_else(|| {
        Problem::setting(
            format!(
                "task {task}: fewer than 10 sequences reach example 2 within {} tokens",
                settings.budget
            ),
            "budget",
            "a larger token budget, or more or longer sequences",
        )
    })?;
    let order = sample_indices(sequences.len(), sequences.len(), settings.seed, task);
    let mut chosen = Vec::new();
    for i in order
        .into_iter()
        .filter(|i| keep.binary_search(i).is_ok()) // `keep` is ascending
        .take(settings.max_sequences)
    {
        let s = &sequences[i];
        let rendered =
            render_to_example(tok, format, &s.messages, k)?.ok_or_else(|| EvalError::Task {
                task: task.to_string(),
                reason: format!(
                    "sequence {} has no example {k} in the {format:?} format",
                    s.id
                ),
            })?;
        chosen.push((s.id.clone(), rendered));
    }
    Ok((k, chosen))
}

/// The loss tokens' calibration predictions: log p of each target, and the
/// log-probabilities of every other entry above 1% (`get_ece_stats` inputs).
#[derive(Debug, Default)]
struct Pool {
    correct: Vec<f64>,
    incorrect: Vec<f64>,
}

impl Pool {
    /// The scores hold only entries above 1% (`CALIBRATION_MIN_P`);
    /// [`reference_ece`] applies the same threshold to the targets.
    fn add(&mut self, scores: &spectrum_lm::TokenScores, positions: std::ops::Range<usize>) {
        for p in positions {
            self.correct.push(scores.logprobs[p] as f64);
            self.incorrect
                .extend(scores.alternatives[p].iter().map(|&(_, lp)| lp as f64));
        }
    }

    fn ece(&self) -> Option<f64> {
        reference_ece(&self.correct, &self.incorrect).map(|e| e.ece)
    }
}

/// Scores one task: per-example losses from one pass per sequence, batched by
/// length within `settings.batch_tokens` padded tokens.
pub fn evaluate(
    ev: &mut Evaluator,
    task: &str,
    sequences: &[EvalSequence],
    progress: Progress,
) -> Result<SteerResult> {
    let (k, chosen) = prepare(
        ev.tok,
        &ev.k_tokenizer.tokenizer,
        ev.format,
        task,
        sequences,
        ev.settings,
    )?;
    score(ev, task, k, &chosen, progress)
}

/// Scores prepared sequences (ids, examples 0..=k): one pass per sequence.
pub fn score(
    ev: &mut Evaluator,
    task: &str,
    k: usize,
    chosen: &[(String, Rendered)],
    progress: Progress,
) -> Result<SteerResult> {
    let settings = ev.settings;
    let mut order: Vec<usize> = (0..chosen.len()).collect();
    order.sort_by_key(|&i| chosen[i].1.ids.len());
    let mut per_sequence = vec![Vec::new(); chosen.len()];
    let (mut all, mut geq_1) = (Pool::default(), Pool::default());
    let mut start = 0;
    while start < order.len() {
        ev.check()?;
        let mut end = start + 1;
        while end < order.len()
            && (end - start + 1) * chosen[order[end]].1.ids.len() <= settings.batch_tokens
        {
            end += 1;
        }
        let batch: Vec<Vec<u32>> = order[start..end]
            .iter()
            .map(|&i| chosen[i].1.ids.clone())
            .collect();
        let scores = ev.lm.score_tokens(&batch)?;
        for (&i, s) in order[start..end].iter().zip(&scores) {
            let rendered = &chosen[i].1;
            // A remote server may leave a token's log-probability out (NaN).
            if let Some(span) = rendered.outputs.iter().find(|span| {
                // Token p is scored at entry p - 1 (output_scores skips empty spans).
                span.loss
                    && span.end > span.start
                    && s.logprobs[span.start.max(1) - 1..span.end - 1]
                        .iter()
                        .any(|l| l.is_nan())
            }) {
                return Err(EvalError::Task {
                    task: task.to_string(),
                    reason: format!(
                        "sequence {}: the model gave no log-probability for a token of output {} \
                         (a remote server that leaves tokens out of its echo)",
                        chosen[i].0, span.index
                    ),
                });
            }
            for span in &rendered.outputs {
                let Some(example) = span.example else {
                    continue;
                };
                // Token p is predicted at entry p - 1.
                let positions = span.start - 1..span.end - 1;
                all.add(s, positions.clone());
                if example >= 1 {
                    geq_1.add(s, positions);
                }
            }
            per_sequence[i] = output_scores(rendered, s);
        }
        progress(end, order.len());
        start = end;
    }
    let outputs: Vec<SteerOutput> = chosen
        .iter()
        .zip(&per_sequence)
        .flat_map(|((id, _), scores)| {
            scores.iter().map(move |o| SteerOutput {
                sequence: id.clone(),
                index: o.index,
                example: o.example,
                loss: o.loss,
                acc: o.acc,
                all_acc: o.all_acc,
                first_acc: o.first_acc,
                tokens: o.tokens,
            })
        })
        .collect();
    let mut summary = summarise(task, k, &outputs);
    summary.ece = all.ece();
    summary.ece_geq_1 = geq_1.ece();
    summary.k_tokenizer = Some(ev.k_tokenizer.name.clone());
    Ok(SteerResult { summary, outputs })
}

/// Task summary and curve from stored outputs (calibration and the k
/// tokenizer are filled in by [`evaluate`]).
pub fn summarise(task: &str, k: usize, outputs: &[SteerOutput]) -> SteerSummary {
    let scored = |min: usize| {
        outputs
            .iter()
            .filter(move |o| o.example.is_some_and(|e| e >= min) && o.loss.is_some())
    };
    let of = |min: usize, f: &dyn Fn(&SteerOutput) -> Option<f64>| {
        mean_se(&scored(min).filter_map(f).collect::<Vec<_>>())
    };
    let curve = (0..=k)
        .filter_map(|j| {
            let at: Vec<&SteerOutput> = outputs.iter().filter(|o| o.example == Some(j)).collect();
            let loss: Vec<f64> = at.iter().filter_map(|o| o.loss).collect();
            let acc: Vec<f64> = at.iter().filter_map(|o| o.acc).collect();
            (!loss.is_empty()).then(|| CurvePoint {
                index: j,
                loss: mean_se(&loss),
                acc: mean_se(&acc),
            })
        })
        .collect();
    let per_sequence = per_sequence_means(outputs);
    SteerSummary {
        task: task.to_string(),
        k,
        sequences: per_sequence.len(),
        loss: of(1, &|o| o.loss),
        loss_se_sequences: mean_se(&per_sequence.iter().map(|s| s.1).collect::<Vec<_>>()).se,
        acc: of(1, &|o| o.acc),
        all_acc: Some(of(1, &|o| o.all_acc.map(f64::from))),
        first_acc: Some(of(1, &|o| o.first_acc.map(f64::from))),
        loss_all: Some(of(0, &|o| o.loss)),
        ece: None,
        ece_geq_1: None,
        k_tokenizer: None,
        curve,
    }
}

/// (sequence id, mean loss, mean accuracy) over each sequence's examples
/// numbered 1 and up, in first-seen order: the units that comparisons pair on.
pub fn per_sequence_means(outputs: &[SteerOutput]) -> Vec<(String, f64, f64)> {
    let mut ids: Vec<&str> = Vec::new();
    let mut sums: Vec<(f64, f64, usize)> = Vec::new();
    for o in outputs.iter().filter(|o| o.example.is_some_and(|e| e >= 1)) {
        let (Some(loss), Some(acc)) = (o.loss, o.acc) else {
            continue;
        };
        let at = match ids.iter().position(|&id| id == o.sequence) {
            Some(at) => at,
            None => {
                ids.push(&o.sequence);
                sums.push((0.0, 0.0, 0));
                ids.len() - 1
            }
        };
        sums[at].0 += loss;
        sums[at].1 += acc;
        sums[at].2 += 1;
    }
    ids.into_iter()
        .zip(sums)
        .map(|(id, (l, a, n))| (id.to_string(), l / n as f64, a / n as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaches(xs: &[i64]) -> Vec<Option<i64>> {
        xs.iter().map(|&x| Some(x)).collect()
    }

    #[test]
    fn k_rule_is_the_references() {
        // k=2: 2x4=8, k=3: 3x3=9, k=5: 5x2=10, k=6: 6x1 -> 5; those reaching 5 kept.
        assert_eq!(choose_k(&reaches(&[2, 3, 5, 6])), Some((5, vec![2, 3])));
        // Ties: k=2 -> 2x3 = 6, k=3 -> 3x2 = 6: the first maximum, the smaller k.
        assert_eq!(choose_k(&reaches(&[2, 3, 3])).map(|r| r.0), Some(2));
        // A best k of 1 becomes 2 only when 10 sequences reach 2.
        let mut r = reaches(&[1; 30]);
        assert_eq!(choose_k(&r), None);
        r.extend(reaches(&[2; 10]));
        assert_eq!(choose_k(&r).map(|r| (r.0, r.1.len())), Some((2, 10)));
        // Dropped sequences (no loss token within the limit) never count.
        assert_eq!(
            choose_k(&[None, Some(3), Some(3), None]),
            Some((3, vec![1, 2]))
        );
        assert_eq!(choose_k(&[]), None);
    }

    #[test]
    fn first_examples_keeps_description_and_pairs() {
        let m = |r, c: &str| Message::new(r, c);
        let messages = vec![
            m(Role::Description, "d"),
            m(Role::Input, "x1"),
            m(Role::Output, "y1"),
            m(Role::Input, "x2"),
            m(Role::Output, "y2"),
            m(Role::Input, "x3"),
            m(Role::Output, "y3"),
        ];
        assert_eq!(first_examples(&messages, 2), messages[..5].to_vec());
        assert_eq!(first_examples(&messages, 9), messages);
    }

    #[test]
    fn summary_pools_examples_from_one_and_keeps_the_sequence_se_beside() {
        let o = |s: &str, example, loss: f64, acc: f64| SteerOutput {
            sequence: s.into(),
            index: example,
            example: Some(example),
            loss: Some(loss),
            acc: Some(acc),
            all_acc: Some((acc == 1.0) as u8),
            first_acc: Some(1),
            tokens: 2,
        };
        let outputs = vec![
            o("a", 0, 9.0, 0.0),
            o("a", 1, 2.0, 1.0),
            o("a", 2, 4.0, 0.5),
            o("b", 0, 9.0, 0.0),
            o("b", 1, 1.0, 1.0),
            o("b", 2, 1.0, 1.0),
        ];
        let s = summarise("t", 2, &outputs);
        assert_eq!(s.sequences, 2);
        // Examples 1..=2: 2, 4, 1, 1 -> mean 2, sd sqrt(2), se sqrt(2)/2.
        assert!((s.loss.mean - 2.0).abs() < 1e-12);
        assert!((s.loss.se.expect("se") - 2f64.sqrt() / 2.0).abs() < 1e-12);
        // Sequences: 3 and 1 -> se 1.
        assert!((s.loss_se_sequences.expect("se") - 1.0).abs() < 1e-12);
        assert!((s.acc.mean - 0.875).abs() < 1e-12);
        assert!((s.all_acc.expect("all").mean - 0.75).abs() < 1e-12);
        assert!((s.loss_all.expect("all").mean - 26.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.curve.len(), 3);
        assert!((s.curve[2].loss.mean - 2.5).abs() < 1e-12);
    }
}
