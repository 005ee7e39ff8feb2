//! Reading prompt log-probabilities back from `echo` + `logprobs` answers:
//! which echoed entry belongs to which of our tokens, and whether the server's
//! entries are aligned with the tokens at all.
//!
//! Servers differ here. vLLM and `spectrum serve` echo one entry per prompt
//! token, in order. llama-cpp-python's server (0.3) leaves out every
//! occurrence of the model's BOS token, tokenises text prompts itself (it
//! refuses token ids), and pairs each token with the distribution that
//! *follows* it when the prompt does not start with BOS: its entries are then
//! shifted by one. [`align`] finds the entries (and checks the server's
//! tokens against ours where the server tokenised), [`Alignment::check`]
//! catches a shift by comparing one echoed distribution with the one the
//! server samples from after the same prefix.

use super::*;

use crate::wire::Logprobs;

/// Where each token of a scored sequence is among the echoed entries.
pub(super) struct Echoed {
    /// `entry[p]`: the echoed entry of token `p`, `None` where the server
    /// left the token out.
    pub(super) entry: Vec<Option<usize>>,
}

/// Text as the servers print one token: special tokens either as their text
/// or as nothing, incomplete UTF-8 dropped (llama-cpp-python decodes with
/// `errors="ignore"`; the tokenizer with U+FFFD).
fn same_piece(tok: &TextTokenizer, id: u32, theirs: &str) -> bool {
    let clean = |s: String| s.replace('\u{FFFD}', "");
    let theirs = theirs.replace('\u{FFFD}', "");
    [true, false].into_iter().any(|skip_special| {
        tok.inner()
            .decode(&[id], skip_special)
            .is_ok_and(|ours| clean(ours) == theirs)
    })
}

/// Whether `id` prints as nothing once special tokens are skipped (BOS, EOS,
/// turn markers): the tokens a server may leave out of its echo.
pub(super) fn is_special(tok: &TextTokenizer, id: u32) -> bool {
    tok.inner().decode(&[id], true).is_ok_and(|s| s.is_empty())
}

/// Maps the tokens of `seq` to the echoed entries of `logprobs`.
///
/// Every entry is taken in order unless the echo is shorter than `seq`; then
/// the server left out every occurrence of one special token (its BOS), which
/// is found by trying each. `text_prompt`: the server tokenised the prompt
/// itself, so each entry's text must equal our token's.
pub(super) fn align(
    tok: &TextTokenizer,
    seq: &[u32],
    logprobs: &Logprobs,
    text_prompt: bool,
) -> std::result::Result<Echoed, String> {
    let entries = logprobs.token_logprobs.len();
    let mut candidates: Vec<Option<u32>> = vec![None];
    for &id in seq {
        if !candidates.contains(&Some(id)) && is_special(tok, id) {
            candidates.push(Some(id));
        }
    }
    // The furthest any candidate got, for the error: (token, ours, theirs).
    let mut furthest: Option<(usize, String, String)> = None;
    for left_out in candidates {
        let kept: Vec<usize> = (0..seq.len())
            .filter(|&p| Some(seq[p]) != left_out)
            .collect();
        if entries < kept.len() {
            continue;
        }
        let check = text_prompt || left_out.is_some();
        let mismatch = kept.iter().enumerate().find(|&(e, &p)| {
            check
                && !logprobs
                    .tokens
                    .get(e)
                    .is_some_and(|theirs| same_piece(tok, seq[p], theirs))
        });
        match mismatch {
            None => {
                let mut entry = vec![None; seq.len()];
                for (e, &p) in kept.iter().enumerate() {
                    entry[p] = Some(e);
                }
                return Ok(Echoed { entry });
            }
            Some((e, &p)) => {
                if furthest.as_ref().is_none_or(|f| f.0 < p) {
                    let ours = tok.decode(&[seq[p]]).unwrap_or_default();
                    let theirs = logprobs.tokens.get(e).cloned().unwrap_or_default();
                    furthest = Some((p, ours, theirs));
                }
            }
        }
    }
    Err(match furthest {
        Some((p, ours, theirs)) => format!(
            "the server's echo does not match the prompt's tokens: token {p} is {ours:?} here and \
             {theirs:?} there ({entries} entries for {} tokens); it tokenised the text differently",
            seq.len()
        ),
        None => format!(
            "the answer holds {entries} log-probabilities for a prompt of {} tokens",
            seq.len()
        ),
    })
}

/// The five largest log-probabilities of a top-entries map, descending.
fn top_values(top: &BTreeMap<String, f64>) -> Vec<f64> {
    let mut v: Vec<f64> = top.values().copied().collect();
    v.sort_by(|a, b| b.total_cmp(a));
    v.truncate(5);
    v
}

/// The three most likely entries, for a message: `"a" -0.10, "b" -2.50, ...`.
pub(super) fn top_three(top: &BTreeMap<String, f64>) -> String {
    let mut v: Vec<(&String, f64)> = top.iter().map(|(k, &lp)| (k, lp)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.iter()
        .take(3)
        .map(|(k, lp)| format!("{k:?} {lp:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How far two servings of one distribution's top log-probabilities may
/// differ: the same prefix computed in two requests (other batch sizes, so
/// other summation orders) agrees to about 1e-5; a shifted echo gives another
/// distribution, which differs by whole nats.
const SAME_DISTRIBUTION: f64 = 0.02;

/// Whether the top entries of the distribution echoed for a token equal the
/// ones the server gives when it predicts that token from its prefix. The
/// shorter list is compared (`spectrum serve` lists the entries above 1%,
/// and the echo adds the token itself, which is the smallest when it is not
/// among the top).
pub(super) fn same_distribution(
    echoed: &BTreeMap<String, f64>,
    predicted: &BTreeMap<String, f64>,
) -> bool {
    let (a, b) = (top_values(echoed), top_values(predicted));
    let n = a.len().min(b.len());
    n > 0
        && a[..n]
            .iter()
            .zip(&b[..n])
            .all(|(x, y)| (x - y).abs() <= SAME_DISTRIBUTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn one_distribution_served_twice_is_the_same_and_a_neighbour_is_not() {
        let a = map(&[("a", -0.1), ("b", -2.5), ("c", -4.0)]);
        let again = map(&[("a", -0.10001), ("b", -2.50002), ("c", -4.0), ("z", -9.0)]);
        let next = map(&[("a", -0.09), ("d", -3.1), ("e", -4.5)]);
        assert!(same_distribution(&a, &again));
        assert!(!same_distribution(&a, &next));
        assert!(!same_distribution(&BTreeMap::new(), &a));
    }
}
