//! Request parameters: sampling settings, seeds, stop strings, decoding.

use super::*;

pub(super) struct Sampling {
    pub(super) n: usize,
    pub(super) max_tokens: usize,
    pub(super) params: SamplingParams,
}

/// The sampling parameters of a request, checked, for up to `max_tokens`
/// new tokens; the model's end-of-sequence tokens always stop.
pub(super) fn sampling(m: &Model, r: &SamplingRequest, max_tokens: usize) -> ApiResult<Sampling> {
    let n = r.n.unwrap_or(1);
    if n == 0 || n > 1024 {
        return Err(ApiError::bad(format!(
            "`n` is {n}; ask for 1 to 1024 samples"
        )));
    }
    let temperature = r.temperature.unwrap_or(1.0);
    let top_p = r.top_p.unwrap_or(1.0);
    if !((0.0..=10.0).contains(&temperature) && top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad(format!(
            "temperature {temperature} must lie in [0, 10] and top_p {top_p} in (0, 1]"
        )));
    }
    let mut stop_ids = r.stop_token_ids.clone().unwrap_or_default();
    stop_ids.extend(m.tokenizer.eos.iter().copied());
    Ok(Sampling {
        n,
        max_tokens,
        params: SamplingParams {
            n,
            temperature,
            top_p,
            top_k: r.top_k.filter(|&k| k > 0).unwrap_or(0) as usize,
            // Unseeded requests draw from the clock and a request counter (never
            // two requests alike); seeded ones are reproducible.
            seed: r.seed.unwrap_or_else(fresh_seed),
            max_tokens,
            stop_ids,
            stop_strings: r.stop.clone().map(Stop::into_vec).unwrap_or_default(),
        },
    })
}

/// A seed for an unseeded request: the clock's nanoseconds and a counter.
pub(super) fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// `text` cut before the first stop string, and whether it was cut.
pub(super) fn cut_at_stop(text: &str, stops: &[String]) -> (String, bool) {
    match stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        Some(at) => (text[..at].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// Streaming (server-sent events) is not offered.
pub(super) fn refuse_stream(stream: bool) -> ApiResult<()> {
    if stream {
        return Err(ApiError::bad(
            "`stream` is not supported; send stream: false",
        ));
    }
    Ok(())
}

pub(super) fn decode(m: &Model, ids: &[u32]) -> ApiResult<String> {
    m.tokenizer
        .decode(ids)
        .map_err(|e| ApiError::bad(spectrum_core::chain(&e)))
}
