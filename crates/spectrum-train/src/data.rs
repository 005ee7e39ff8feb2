//! Training data (METHOD.md §3): sequences materialised from the stored ones
//! by seed, rendered into token ids and loss flags, and grouped by length.
//!
//! Everything here is a pure function of (seed, epoch), so a resumed run sees
//! exactly the batches an uninterrupted one would have seen.

use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{PromptFormat, Rendered};
use spectrum_suite::{Message, Rng, Role};

use crate::Result;
use crate::spec::RunSpec;

/// One stored sequence and what materialising it may need.
#[derive(Debug, Clone)]
pub struct SourceSequence {
    pub task: String,
    pub messages: Vec<Message>,
    /// Descriptions to use when the sequence has none (the task's listed
    /// descriptions without `{placeholders}`).
    pub fallback_descriptions: Vec<String>,
}

/// A rendered training sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub ids: Vec<u32>,
    pub loss: Vec<bool>,
}

impl Item {
    pub fn loss_tokens(&self) -> usize {
        self.loss.iter().filter(|&&l| l).count()
    }
}

/// Sequences of one micro-batch, similar in length.
pub type MicroBatch = Vec<Item>;

/// Sequences sorted by length within windows of this many micro-batches.
const LENGTH_WINDOW: usize = 32;

/// A fresh version of `seq` for `epoch`: its examples shuffled, its
/// description kept with probability `description_prob` (a fallback one
/// drawn when it has none).
pub fn materialise(
    seq: &SourceSequence,
    seed: u64,
    epoch: usize,
    index: usize,
    description_prob: f64,
) -> Vec<Message> {
    let mut rng = Rng::derive(seed, &format!("train/{epoch}/{index}"));
    let mut description = None;
    let mut examples: Vec<Vec<Message>> = Vec::new();
    let mut pending: Option<Message> = None;
    for m in &seq.messages {
        match m.role {
            Role::Description => description = Some(m.clone()),
            Role::Input => pending = Some(m.clone()),
            Role::Output => {
                let mut example: Vec<Message> = pending.take().into_iter().collect();
                example.push(m.clone());
                examples.push(example);
            }
        }
    }
    rng.shuffle(&mut examples);
    let description = description.or_else(|| {
        (!seq.fallback_descriptions.is_empty()).then(|| {
            Message::new(
                Role::Description,
                rng.choose(&seq.fallback_descriptions).clone(),
            )
        })
    });
    let keep = rng.bernoulli(description_prob);
    description
        .filter(|_| keep)
        .into_iter()
        .chain(examples.into_iter().flatten())
        .collect()
}

/// Renders one materialised sequence; `None` when it has no loss tokens.
pub fn render(
    tok: &TextTokenizer,
    format: PromptFormat,
    messages: &[Message],
    max_tokens: usize,
) -> Result<Option<Item>> {
    let Rendered { ids, loss, .. } =
        spectrum_lm::template::render(tok, format, messages, Some(max_tokens))?;
    let item = Item { ids, loss };
    Ok((item.loss_tokens() > 0).then_some(item))
}

/// The micro-batches of one epoch, in training order.
#[derive(Debug, Clone)]
pub struct EpochPlan {
    pub epoch: usize,
    pub batches: Vec<MicroBatch>,
}

/// Shuffles the sequences, renders them, and groups them into micro-batches of
/// similar length (sorted within windows, then the batches shuffled).
pub fn plan_epoch(
    sources: &[SourceSequence],
    tok: &TextTokenizer,
    spec: &RunSpec,
    epoch: usize,
) -> Result<EpochPlan> {
    let (seed, micro_batch) = (spec.seed, spec.micro_batch);
    let mut rng = Rng::derive(seed, &format!("epoch/{epoch}"));
    let mut order: Vec<usize> = (0..sources.len()).collect();
    rng.shuffle(&mut order);
    let mut items = Vec::with_capacity(order.len());
    for &i in &order {
        let messages = materialise(&sources[i], seed, epoch, i, spec.description_prob);
        if let Some(item) = render(tok, spec.format, &messages, spec.max_tokens)? {
            items.push(item);
        }
    }
    let mut batches: Vec<MicroBatch> = Vec::new();
    for window in items.chunks_mut(micro_batch * LENGTH_WINDOW) {
        window.sort_by_key(|item| item.ids.len());
        batches.extend(window.chunks(micro_batch).map(<[Item]>::to_vec));
    }
    rng.shuffle(&mut batches);
    Ok(EpochPlan { epoch, batches })
}

/// Where the data stream stands: the next micro-batch of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub epoch: usize,
    pub batch: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, inputs: bool) -> SourceSequence {
        let mut messages = vec![Message::new(Role::Description, "d")];
        for i in 0..n {
            if inputs {
                messages.push(Message::new(Role::Input, format!("x{i}")));
            }
            messages.push(Message::new(Role::Output, format!("y{i}")));
        }
        SourceSequence {
            task: "t".into(),
            messages,
            fallback_descriptions: Vec::new(),
        }
    }

    #[test]
    fn materialising_shuffles_examples_keeping_pairs_and_is_deterministic() {
        let s = seq(12, true);
        let a = materialise(&s, 7, 0, 3, 1.0);
        assert_eq!(a, materialise(&s, 7, 0, 3, 1.0));
        assert_ne!(
            a,
            materialise(&s, 7, 1, 3, 1.0),
            "another epoch, another order"
        );
        assert_eq!(a[0].role, Role::Description);
        assert_eq!(a.len(), s.messages.len());
        for pair in a[1..].chunks(2) {
            assert_eq!(pair[0].role, Role::Input);
            assert_eq!(pair[0].content[1..], pair[1].content[1..], "{pair:?}");
        }
        let order: Vec<&str> = a[1..].iter().map(|m| m.content.as_str()).collect();
        assert_ne!(order[1], "y0", "examples were shuffled: {order:?}");
    }

    #[test]
    fn description_is_kept_with_the_given_probability() {
        let s = seq(3, false);
        let kept = (0..2000)
            .filter(|&i| materialise(&s, 1, 0, i, 0.8)[0].role == Role::Description)
            .count();
        assert!((1500..1700).contains(&kept), "{kept} of 2000");
        assert!((0..50).all(|i| materialise(&s, 1, 0, i, 0.0)[0].role == Role::Output));
        let mut bare = seq(3, false);
        bare.messages.remove(0);
        bare.fallback_descriptions = vec!["fallback".into()];
        assert_eq!(materialise(&bare, 1, 0, 0, 1.0)[0].content, "fallback");
    }
}
