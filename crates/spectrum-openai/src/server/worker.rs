//! The worker thread that owns a model: batches queued scoring and sampling work.

use super::*;

/// The worker loop of one model: take what is queued, batch it, answer.
pub(super) fn worker(
    model: &mut LocalModel,
    rx: &mpsc::Receiver<Work>,
    (max_tokens, max_rows): (usize, usize),
) {
    let mut pending: VecDeque<Work> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(work) => pending.push_back(work),
                Err(_) => return,
            }
        }
        pending.extend(rx.try_iter());
        let (mut scores, mut samples, mut rows) = (Vec::new(), Vec::new(), 0);
        let mut rest = VecDeque::new();
        for work in pending.drain(..) {
            match work {
                Work::Score { .. } if scores.is_empty() || scores.len() < 256 => scores.push(work),
                Work::Sample { ref params, .. }
                    if samples.is_empty() || rows + params.n.max(1) <= max_rows =>
                {
                    rows += params.n.max(1);
                    samples.push(work);
                }
                other => rest.push_back(other),
            }
        }
        pending = rest;
        run_scores(model, scores, max_tokens);
        run_samples(model, samples);
    }
}

pub(super) fn run_scores(model: &mut LocalModel, works: Vec<Work>, max_tokens: usize) {
    let mut sequences: Vec<(usize, usize, &[u32])> = Vec::new();
    for (w, work) in works.iter().enumerate() {
        if let Work::Score { sequences: s, .. } = work {
            sequences.extend(s.iter().enumerate().map(|(i, seq)| (w, i, seq.as_slice())));
        }
    }
    sequences.sort_by_key(|s| s.2.len());
    let mut results: HashMap<(usize, usize), TokenScores> = HashMap::new();
    let mut failure = None;
    let mut start = 0;
    while start < sequences.len() && failure.is_none() {
        let mut end = start + 1;
        while end < sequences.len() && (end - start + 1) * sequences[end].2.len() <= max_tokens {
            end += 1;
        }
        let batch: Vec<Vec<u32>> = sequences[start..end].iter().map(|s| s.2.to_vec()).collect();
        match spectrum_lm::LanguageModel::score_tokens(model, &batch) {
            Ok(scores) => {
                for (s, score) in sequences[start..end].iter().zip(scores) {
                    results.insert((s.0, s.1), score);
                }
            }
            Err(e) => failure = Some(spectrum_core::chain(&e)),
        }
        start = end;
    }
    for (w, work) in works.into_iter().enumerate() {
        if let Work::Score { sequences, reply } = work {
            let answer = match &failure {
                Some(e) => Err(e.clone()),
                None => Ok((0..sequences.len())
                    .map(|i| results.remove(&(w, i)).unwrap_or_else(empty_scores))
                    .collect()),
            };
            let _ = reply.send(answer);
        }
    }
}

pub(super) fn empty_scores() -> TokenScores {
    TokenScores::with_capacity(0)
}

pub(super) fn run_samples(model: &mut LocalModel, works: Vec<Work>) {
    if works.is_empty() {
        return;
    }
    let requests: Vec<(&[u32], &SamplingParams)> = works
        .iter()
        .filter_map(|w| match w {
            Work::Sample { prompt, params, .. } => Some((prompt.as_slice(), params)),
            Work::Score { .. } => None,
        })
        .collect();
    let result = model
        .sample_many(&requests)
        .map_err(|e| spectrum_core::chain(&e));
    let mut outputs = match result {
        Ok(out) => out.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => vec![Err(e); works.len()],
    };
    for work in works.into_iter().rev() {
        if let Work::Sample { reply, .. } = work {
            let _ = reply.send(outputs.pop().unwrap_or_else(|| Err("no answer".into())));
        }
    }
}
