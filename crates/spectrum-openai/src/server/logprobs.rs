//! Log-probabilities in the three formats clients read: legacy completions,
//! vLLM prompt log-probabilities, chat.

use super::*;

/// Legacy `logprobs` for `ids[from..]`, scored teacher-forced; the first
/// token of a sequence has none. `top_logprobs` holds the arg-max and then
/// the other entries above 1% (the calibration's predictions), `n` at most.
pub(super) fn legacy_logprobs(
    m: &Model,
    ids: &[u32],
    scores: &TokenScores,
    from: usize,
    offset0: usize,
    n: usize,
) -> ApiResult<Logprobs> {
    let mut out = Logprobs::default();
    let mut offset = offset0;
    for (p, &token) in ids.iter().enumerate().skip(from) {
        let text = decode(m, &[token])?;
        out.text_offset.push(offset);
        offset += text.len();
        out.tokens.push(text);
        if p == 0 {
            out.token_logprobs.push(None);
            out.top_logprobs.push(None);
        } else {
            let top = scores.top_ids[p - 1];
            let mut entries = vec![(top, scores.top_logprobs[p - 1])];
            if top != token {
                entries.push((token, scores.logprobs[p - 1]));
            }
            let mut others: Vec<(u32, f32)> = scores.alternatives[p - 1]
                .iter()
                .copied()
                .filter(|&(id, _)| id != top)
                .collect();
            others.sort_by(|a, b| b.1.total_cmp(&a.1));
            entries.extend(others);
            entries.truncate(n.max(1));
            let mut map = BTreeMap::new();
            for (id, lp) in entries {
                map.insert(decode(m, &[id])?, lp as f64);
            }
            out.token_logprobs.push(Some(scores.logprobs[p - 1] as f64));
            out.top_logprobs.push(Some(map));
        }
    }
    Ok(out)
}

/// vLLM's `prompt_logprobs`: token id -> log-probability, with the top token.
pub(super) fn vllm_prompt_logprobs(
    m: &Model,
    ids: &[u32],
    scores: &TokenScores,
) -> ApiResult<Vec<Option<BTreeMap<String, PromptLogprob>>>> {
    let mut out = vec![None];
    for (p, &token) in ids.iter().enumerate().skip(1) {
        let mut entry = BTreeMap::new();
        let top = scores.top_ids[p - 1];
        entry.insert(
            top.to_string(),
            PromptLogprob {
                logprob: scores.top_logprobs[p - 1] as f64,
                rank: Some(1),
                decoded_token: Some(decode(m, &[top])?),
            },
        );
        entry.insert(
            token.to_string(),
            PromptLogprob {
                logprob: scores.logprobs[p - 1] as f64,
                rank: Some(scores.ranks[p - 1] as u64),
                decoded_token: Some(decode(m, &[token])?),
            },
        );
        out.push(Some(entry));
    }
    Ok(out)
}

/// Chat log-probabilities of the answer `ids`, which follow `prompt_len`
/// prompt tokens in the scored sequence; `top_logprobs` holds the arg-max.
pub(super) fn chat_logprobs(
    m: &Model,
    ids: &[u32],
    scores: &TokenScores,
    prompt_len: usize,
    top: Option<usize>,
) -> ApiResult<ChatLogprobs> {
    let mut content = Vec::with_capacity(ids.len());
    for (k, &token) in ids.iter().enumerate() {
        let at = prompt_len + k - 1; // entry p - 1 scores token p
        let text = decode(m, &[token])?;
        let best = decode(m, &[scores.top_ids[at]])?;
        content.push(ChatTokenLogprob {
            bytes: text.as_bytes().to_vec(),
            token: text,
            logprob: scores.logprobs[at] as f64,
            top_logprobs: if top.unwrap_or(0) > 0 {
                vec![ChatTopLogprob {
                    bytes: best.as_bytes().to_vec(),
                    token: best,
                    logprob: scores.top_logprobs[at] as f64,
                }]
            } else {
                Vec::new()
            },
        });
    }
    Ok(ChatLogprobs { content })
}
