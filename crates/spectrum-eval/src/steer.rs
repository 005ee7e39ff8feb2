//! In-context steerability (METHOD.md §4.1): sequences of k examples of one
//! held-out task, each scored in one forward pass; the loss of output j is
//! conditioned on outputs 0..j-1.

use serde::{Deserialize, Serialize};
use spectrum_lm::engine::output_scores;
use spectrum_lm::template::{self, PromptFormat, Rendered};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_suite::{Message, Role};

use crate::metrics::{MeanSe, ece, mean_se};
use crate::{EvalError, Evaluator, Progress, Result, Settings, sample_indices};

/// One sequence of a task, with a stable id to pair runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSequence {
    pub id: String,
    pub messages: Vec<Message>,
}

/// One scored output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SteerOutput {
    pub sequence: String,
    pub index: usize,
    /// Summed NLL of the output's loss tokens (end of turn included); `None`
    /// where the format gives the output no loss.
    pub loss: Option<f64>,
    pub acc: Option<u8>,
    pub tokens: usize,
}

/// One point of the steerability curve: output index j over all sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CurvePoint {
    pub index: usize,
    pub loss: MeanSe,
    pub acc: MeanSe,
}

/// A task's steerability summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SteerSummary {
    pub task: String,
    /// Examples per sequence, by the k rule.
    pub k: usize,
    pub sequences: usize,
    /// Mean loss over outputs with index >= 1; the standard error is over
    /// per-sequence means (outputs of one sequence are not independent).
    pub loss: MeanSe,
    pub acc: MeanSe,
    /// Expected calibration error (10 equal-count bins) of the loss tokens of
    /// outputs with index >= 1: confidence = probability of the arg-max token,
    /// correct = the target is the arg-max.
    pub ece: Option<f64>,
    pub curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteerResult {
    pub summary: SteerSummary,
    pub outputs: Vec<SteerOutput>,
}

/// The k of METHOD.md §4.1: maximises k x (number of sequences with at least k
/// complete examples within the budget), at least 2; the larger k on ties.
/// `None` when no sequence fits two examples.
pub fn choose_k(fits: &[usize]) -> Option<usize> {
    let max = fits.iter().copied().max().unwrap_or(0);
    (2..=max)
        .map(|k| (k * fits.iter().filter(|&&f| f >= k).count(), k))
        .max()
        .map(|(_, k)| k)
}

/// The first `k` examples of `messages` (the description kept).
pub fn first_examples(messages: &[Message], k: usize) -> Vec<Message> {
    let mut out = Vec::new();
    let mut outputs = 0;
    for m in messages {
        if outputs == k {
            break;
        }
        out.push(m.clone());
        outputs += (m.role == Role::Output) as usize;
    }
    out
}

/// The sequences a task is scored on: k by the rule, then the first
/// `settings.max_sequences` with k examples in an order chosen by seed, cut to k.
pub fn prepare(
    tok: &TextTokenizer,
    format: PromptFormat,
    task: &str,
    sequences: &[EvalSequence],
    settings: &Settings,
) -> Result<(usize, Vec<(String, Rendered)>)> {
    let mut fits = Vec::with_capacity(sequences.len());
    for s in sequences {
        let r = template::render(tok, format, &s.messages, Some(settings.budget))?;
        // Examples that fit, by index: the chat format moves a sequence's first
        // example into the system prompt when there is no description, so its
        // spans start at index 1.
        fits.push(r.outputs.last().map_or(0, |o| o.index + 1));
    }
    let k = choose_k(&fits).ok_or_else(|| EvalError::Task {
        task: task.to_string(),
        reason: format!(
            "no sequence has two examples within {} tokens (fix: a larger --budget, or more examples per sequence)",
            settings.budget
        ),
    })?;
    // The seeded order covers every sequence, so runs whose k differs (another
    // template or tokenizer) still choose mostly the same sequences to pair on.
    let mut chosen = Vec::new();
    let order = sample_indices(sequences.len(), sequences.len(), settings.seed, task);
    for i in order
        .into_iter()
        .filter(|&i| fits[i] >= k)
        .take(settings.max_sequences)
    {
        let s = &sequences[i];
        let messages = first_examples(&s.messages, k);
        chosen.push((
            s.id.clone(),
            template::render(tok, format, &messages, None)?,
        ));
    }
    Ok((k, chosen))
}

/// Scores one task: per-output losses from one pass per sequence, batched by
/// length within `settings.batch_tokens` padded tokens.
pub fn evaluate(
    ev: &mut Evaluator,
    task: &str,
    sequences: &[EvalSequence],
    progress: Progress,
) -> Result<SteerResult> {
    let settings = ev.settings;
    let (k, chosen) = prepare(ev.tok, ev.format, task, sequences, settings)?;
    let mut order: Vec<usize> = (0..chosen.len()).collect();
    order.sort_by_key(|&i| chosen[i].1.ids.len());
    let mut per_sequence = vec![Vec::new(); chosen.len()];
    let (mut confidence, mut correct) = (Vec::new(), Vec::new());
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
            for span in rendered.outputs.iter().filter(|o| o.loss && o.index >= 1) {
                for p in span.start - 1..span.end - 1 {
                    confidence.push((s.top_logprobs[p] as f64).exp());
                    correct.push(s.hits[p]);
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
                loss: o.loss,
                acc: o.acc,
                tokens: o.tokens,
            })
        })
        .collect();
    let summary = summarise(task, k, &outputs, ece(&confidence, &correct, 10));
    Ok(SteerResult { summary, outputs })
}

/// Task summary and curve from stored outputs.
pub fn summarise(task: &str, k: usize, outputs: &[SteerOutput], ece: Option<f64>) -> SteerSummary {
    let per_sequence = per_sequence_means(outputs);
    let curve = (0..k)
        .filter_map(|j| {
            let at: Vec<&SteerOutput> = outputs.iter().filter(|o| o.index == j).collect();
            let loss: Vec<f64> = at.iter().filter_map(|o| o.loss).collect();
            let acc: Vec<f64> = at.iter().filter_map(|o| o.acc.map(f64::from)).collect();
            (!loss.is_empty()).then(|| CurvePoint {
                index: j,
                loss: mean_se(&loss),
                acc: mean_se(&acc),
            })
        })
        .collect();
    SteerSummary {
        task: task.to_string(),
        k,
        sequences: per_sequence.len(),
        loss: mean_se(&per_sequence.iter().map(|s| s.1).collect::<Vec<_>>()),
        acc: mean_se(&per_sequence.iter().map(|s| s.2).collect::<Vec<_>>()),
        ece,
        curve,
    }
}

/// (sequence id, mean loss, mean accuracy) over each sequence's outputs with
/// index >= 1, in first-seen order: the units that comparisons pair on.
pub fn per_sequence_means(outputs: &[SteerOutput]) -> Vec<(String, f64, f64)> {
    let mut ids: Vec<&str> = Vec::new();
    let mut sums: Vec<(f64, f64, usize)> = Vec::new();
    for o in outputs.iter().filter(|o| o.index >= 1) {
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
        sums[at].1 += acc as f64;
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

    #[test]
    fn k_rule() {
        // k=2: 2x4=8, k=3: 3x3=9, k=5: 5x2=10, k=6: 6x1 -> 5.
        assert_eq!(choose_k(&[2, 3, 5, 6]), Some(5));
        // Ties: k=2 -> 2x3 = 6, k=3 -> 3x2 = 6: the larger k.
        assert_eq!(choose_k(&[2, 3, 3]), Some(3));
        assert_eq!(choose_k(&[1, 1, 0]), None);
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
    fn summary_averages_outputs_from_index_one() {
        let o = |s: &str, index, loss: f64, acc| SteerOutput {
            sequence: s.into(),
            index,
            loss: Some(loss),
            acc: Some(acc),
            tokens: 1,
        };
        let outputs = vec![
            o("a", 0, 9.0, 0),
            o("a", 1, 2.0, 1),
            o("a", 2, 4.0, 0),
            o("b", 0, 9.0, 0),
            o("b", 1, 1.0, 1),
            o("b", 2, 1.0, 1),
        ];
        let s = summarise("t", 3, &outputs, None);
        assert_eq!(s.sequences, 2);
        assert!((s.loss.mean - 2.0).abs() < 1e-12); // sequences: 3 and 1
        assert!((s.loss.se.expect("se") - 1.0).abs() < 1e-12);
        assert!((s.acc.mean - 0.75).abs() < 1e-12);
        assert_eq!(s.curve.len(), 3);
        assert!((s.curve[0].loss.mean - 9.0).abs() < 1e-12);
        assert!((s.curve[2].loss.mean - 2.5).abs() < 1e-12);
    }
}
