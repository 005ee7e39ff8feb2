//! `spectrum serve`: local models over the OpenAI-compatible API.
//!
//! Routes: `GET /v1/models`, `POST /v1/completions` (text or token-id
//! prompts, batches of prompts, `n`, `seed`, `stop`, `echo`, `logprobs`, and
//! vLLM's `top_k`, `stop_token_ids`, `prompt_logprobs`), `POST
//! /v1/chat/completions` (with `logprobs`), and `GET /v1/models/{id}/tokenizer` (ours: lets a
//! client register the model without a copy of its tokenizer).
//!
//! Each model has one worker thread that owns it. Handlers queue work; the
//! worker takes everything queued, scores all teacher-forced sequences in
//! length-sorted batches of at most `max_batch_tokens` padded tokens, and
//! samples up to `max_batch_rows` rows of all sampling requests as one batch
//! ([`LocalModel::sample_many`]). Shutdown stops accepting, lets requests in
//! flight finish, then ends the workers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use spectrum_lm::engine::{LocalModel, SamplingParams, TokenScores};
use spectrum_lm::template::ChatTemplate;
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{LmError, Result};
use tokio::sync::oneshot;

use crate::wire::{
    ChatChoice, ChatLogprobs, ChatMessage, ChatRequest, ChatResponse, ChatTokenLogprob,
    ChatTopLogprob, CompletionChoice, CompletionRequest, CompletionResponse, ErrorBody,
    ErrorDetail, Logprobs, ModelCard, ModelList, Prompt, PromptLogprob, Stop, TokenizerFiles,
    Usage,
};

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    /// 0: any free port.
    pub port: u16,
    /// Requests must carry `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Padded tokens per scoring forward pass.
    pub max_batch_tokens: usize,
    /// Sampling rows decoded together.
    pub max_batch_rows: usize,
    /// Pieces of work queued or running per model before new requests get 503
    /// (with Retry-After), so an overload answers instead of growing memory.
    pub max_queue: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 8000,
            api_key: None,
            max_batch_tokens: 8192,
            max_batch_rows: 64,
            max_queue: 1024,
        }
    }
}

/// A model to serve under `name`; `dir` holds its tokenizer files.
#[derive(Debug)]
pub struct ServedModel {
    pub name: String,
    pub dir: PathBuf,
    pub model: LocalModel,
}

type Reply<T> = oneshot::Sender<std::result::Result<T, String>>;

enum Work {
    Score {
        sequences: Vec<Vec<u32>>,
        reply: Reply<Vec<TokenScores>>,
    },
    Sample {
        prompt: Vec<u32>,
        params: SamplingParams,
        reply: Reply<Vec<Vec<u32>>>,
    },
}

struct Model {
    tokenizer: TextTokenizer,
    chat: Option<ChatTemplate>,
    dir: PathBuf,
    vocab: usize,
    context: usize,
    queue: std::sync::Mutex<mpsc::Sender<Work>>,
    /// Work submitted and not yet answered, and its limit.
    pending: AtomicUsize,
    max_queue: usize,
}

/// Counts one piece of work as pending until dropped (answered, failed, or
/// the client went away).
struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct AppState {
    models: BTreeMap<String, Model>,
    api_key: Option<String>,
    started: u64,
    next_id: AtomicU64,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Server {
    /// Binds, starts a worker per model and serves on a background runtime.
    pub fn start(models: Vec<ServedModel>, options: &ServeOptions) -> Result<Server> {
        if models.is_empty() {
            return Err(LmError::Remote("no model to serve".into()));
        }
        let listener = std::net::TcpListener::bind((options.host.as_str(), options.port))
            .map_err(|e| {
                LmError::Remote(format!(
                    "cannot listen on {}:{}: {e} (fix: choose another --port, or stop what uses it)",
                    options.host, options.port
                ))
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| LmError::Remote(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LmError::Remote(e.to_string()))?;
        let mut table = BTreeMap::new();
        let mut workers = Vec::new();
        for served in models {
            let (tx, rx) = mpsc::channel();
            let tokenizer = served.model.tokenizer.clone();
            let config = served.model.model.config().clone();
            let chat = ChatTemplate::new(&tokenizer).ok();
            let limits = (
                options.max_batch_tokens.max(1),
                options.max_batch_rows.max(1),
            );
            let mut model = served.model;
            workers.push(
                std::thread::Builder::new()
                    .name(format!("serve {}", served.name))
                    .spawn(move || {
                        spectrum_lm::fpu::flush_subnormals();
                        worker(&mut model, &rx, limits)
                    })
                    .map_err(|e| LmError::Remote(e.to_string()))?,
            );
            table.insert(
                served.name,
                Model {
                    vocab: config.vocab_size,
                    context: config.max_position_embeddings,
                    tokenizer,
                    chat,
                    dir: served.dir,
                    queue: std::sync::Mutex::new(tx),
                    pending: AtomicUsize::new(0),
                    max_queue: options.max_queue.max(1),
                },
            );
        }
        let state = Arc::new(AppState {
            models: table,
            api_key: options.api_key.clone(),
            started: now(),
            next_id: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/v1/models", get(list_models))
            .route("/v1/models/{id}/tokenizer", get(tokenizer_files))
            .route("/v1/completions", post(completions))
            .route("/v1/chat/completions", post(chat_completions))
            .fallback(not_found)
            .with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("serve http".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                })
            })
            .map_err(|e| LmError::Remote(e.to_string()))?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for the requests in flight, then ends the workers.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| LmError::Remote("the HTTP thread panicked".into()))?
                .map_err(|e| LmError::Remote(format!("serving failed: {e}")))?;
        }
        // The router (and with it every queue sender) is gone: workers finish.
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The worker loop of one model: take what is queued, batch it, answer.
fn worker(
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

fn run_scores(model: &mut LocalModel, works: Vec<Work>, max_tokens: usize) {
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
            Err(e) => failure = Some(e.to_string()),
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

fn empty_scores() -> TokenScores {
    TokenScores::with_capacity(0)
}

fn run_samples(model: &mut LocalModel, works: Vec<Work>) {
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
    let result = model.sample_many(&requests).map_err(|e| e.to_string());
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

/// An API error as OpenAI shapes it.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            code: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = if self.status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                kind: kind.into(),
                param: None,
                code: self.code.map(str::to_string),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Overloaded: clients (ours included) retry after a second.
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(key) = &state.api_key else {
        return Ok(());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(key.as_str()) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong API key: send `Authorization: Bearer KEY` with the key `spectrum serve` was started with".into(),
            code: Some("invalid_api_key"),
        })
    }
}

fn model<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a Model> {
    state.models.get(name).ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no model {name:?} here; this server serves {}",
            state.models.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        code: Some("model_not_found"),
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the request body is not valid: {e}")))
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route; this server answers GET /v1/models, POST /v1/completions and POST /v1/chat/completions".into(),
        code: None,
    }
}

async fn list_models(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<ModelList>> {
    authorize(&state, &headers)?;
    Ok(axum::Json(ModelList {
        object: "list".into(),
        data: state
            .models
            .keys()
            .map(|id| ModelCard {
                id: id.clone(),
                object: "model".into(),
                created: state.started,
                owned_by: "spectrum-studio".into(),
            })
            .collect(),
    }))
}

async fn tokenizer_files(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<TokenizerFiles>> {
    authorize(&state, &headers)?;
    let m = model(&state, &id)?;
    let read = |name: &str| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(m.dir.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    };
    let tokenizer = read("tokenizer.json").ok_or_else(|| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("cannot read {}", m.dir.join("tokenizer.json").display()),
        code: None,
    })?;
    Ok(axum::Json(TokenizerFiles {
        tokenizer,
        tokenizer_config: read("tokenizer_config.json"),
    }))
}

/// Work handed to a model's worker; `answer` waits for it.
struct Ticket<'a, T> {
    rx: oneshot::Receiver<std::result::Result<T, String>>,
    _pending: Pending<'a>,
}

fn failed(message: String) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
        code: None,
    }
}

/// Queues work now (so the pieces of one request batch together), or answers
/// 503 when the model has `max_queue` pieces waiting.
fn enqueue<T>(m: &Model, make: impl FnOnce(Reply<T>) -> Work) -> ApiResult<Ticket<'_, T>> {
    if m.pending.fetch_add(1, Ordering::Relaxed) >= m.max_queue {
        m.pending.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "busy: {} pieces of work are queued for this model; retry shortly",
                m.max_queue
            ),
            code: Some("overloaded"),
        });
    }
    let pending = Pending(&m.pending);
    let (tx, rx) = oneshot::channel();
    m.queue
        .lock()
        .map_err(|_| ApiError::bad("the model's queue is broken"))?
        .send(make(tx))
        .map_err(|_| failed("the model's worker has stopped".into()))?;
    Ok(Ticket {
        rx,
        _pending: pending,
    })
}

impl<T> Ticket<'_, T> {
    async fn answer(self) -> ApiResult<T> {
        self.rx
            .await
            .map_err(|_| failed("the model's worker has stopped".into()))?
            .map_err(failed)
    }
}

async fn submit<T>(m: &Model, make: impl FnOnce(Reply<T>) -> Work) -> ApiResult<T> {
    enqueue(m, make)?.answer().await
}

fn prompts(m: &Model, prompt: Option<Prompt>) -> ApiResult<Vec<Vec<u32>>> {
    let encode = |text: &str| -> ApiResult<Vec<u32>> {
        let mut ids: Vec<u32> = m.tokenizer.bos.into_iter().collect();
        ids.extend(
            m.tokenizer
                .encode(text)
                .map_err(|e| ApiError::bad(e.to_string()))?,
        );
        Ok(ids)
    };
    let list = match prompt.ok_or_else(|| ApiError::bad("`prompt` is missing"))? {
        Prompt::Text(t) => vec![encode(&t)?],
        Prompt::Texts(ts) => ts.iter().map(|t| encode(t)).collect::<ApiResult<_>>()?,
        Prompt::Tokens(ids) => vec![ids],
        Prompt::TokenBatch(batch) => batch,
    };
    if list.is_empty() {
        return Err(ApiError::bad("`prompt` holds no prompt"));
    }
    for (i, ids) in list.iter().enumerate() {
        if ids.is_empty() {
            return Err(ApiError::bad(format!("prompt {i} has no tokens")));
        }
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= m.vocab) {
            return Err(ApiError::bad(format!(
                "prompt {i} holds token id {bad}, beyond the vocabulary of {} tokens",
                m.vocab
            )));
        }
    }
    Ok(list)
}

struct Sampling {
    n: usize,
    max_tokens: usize,
    params: SamplingParams,
}

#[allow(clippy::too_many_arguments)]
fn sampling(
    m: &Model,
    n: Option<usize>,
    max_tokens: usize,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    seed: Option<u64>,
    stop: Vec<String>,
    stop_ids: Vec<u32>,
) -> ApiResult<Sampling> {
    let n = n.unwrap_or(1);
    if n == 0 || n > 1024 {
        return Err(ApiError::bad(format!(
            "`n` is {n}; ask for 1 to 1024 samples"
        )));
    }
    let temperature = temperature.unwrap_or(1.0);
    let top_p = top_p.unwrap_or(1.0);
    if !((0.0..=10.0).contains(&temperature) && top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad(format!(
            "temperature {temperature} must lie in [0, 10] and top_p {top_p} in (0, 1]"
        )));
    }
    let mut stop_ids = stop_ids;
    stop_ids.extend(m.tokenizer.eos.iter().copied());
    Ok(Sampling {
        n,
        max_tokens,
        params: SamplingParams {
            n,
            temperature,
            top_p,
            top_k: top_k.filter(|&k| k > 0).unwrap_or(0) as usize,
            // Unseeded requests draw from the clock and a request counter (never
            // two requests alike); seeded ones are reproducible.
            seed: seed.unwrap_or_else(fresh_seed),
            max_tokens,
            stop_ids,
            stop_strings: stop,
        },
    })
}

/// A seed for an unseeded request: the clock's nanoseconds and a counter.
fn fresh_seed() -> u64 {
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
fn cut_at_stop(text: &str, stops: &[String]) -> (String, bool) {
    match stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        Some(at) => (text[..at].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// Streaming (server-sent events) is not offered.
fn refuse_stream(stream: bool) -> ApiResult<()> {
    if stream {
        return Err(ApiError::bad(
            "`stream` is not supported; send stream: false",
        ));
    }
    Ok(())
}

fn decode(m: &Model, ids: &[u32]) -> ApiResult<String> {
    m.tokenizer
        .decode(ids)
        .map_err(|e| ApiError::bad(e.to_string()))
}

/// Legacy `logprobs` for `ids[from..]`, scored teacher-forced; the first
/// token of a sequence has none. `top_logprobs` holds the arg-max and then
/// the other entries above 1% (the calibration's predictions), `n` at most.
fn legacy_logprobs(
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
fn vllm_prompt_logprobs(
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

async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<CompletionResponse>> {
    authorize(&state, &headers)?;
    let request: CompletionRequest = parse(&body)?;
    refuse_stream(request.stream)?;
    let m = model(&state, &request.model)?;
    let prompts = prompts(m, request.prompt.clone())?;
    let max_tokens = request.max_tokens.unwrap_or(16);
    let stops = request.stop.clone().map(Stop::into_vec).unwrap_or_default();
    let s = sampling(
        m,
        request.n,
        max_tokens,
        request.temperature,
        request.top_p,
        request.top_k,
        request.seed,
        stops.clone(),
        request.stop_token_ids.clone().unwrap_or_default(),
    )?;
    if max_tokens == 0 && !request.echo {
        return Err(ApiError::bad(
            "max_tokens is 0 without echo: nothing to return",
        ));
    }
    if let Some(p) = prompts.iter().find(|p| p.len() + max_tokens > m.context) {
        return Err(ApiError::bad(format!(
            "a prompt of {} tokens plus max_tokens {max_tokens} exceeds the model's context of {} tokens",
            p.len(),
            m.context
        )));
    }
    // Sample every prompt (one queued piece of work each, so they batch).
    let completions: Vec<Vec<Vec<u32>>> = if max_tokens == 0 {
        prompts.iter().map(|_| vec![Vec::new(); s.n]).collect()
    } else {
        let tickets = prompts
            .iter()
            .map(|p| {
                enqueue(m, |reply| Work::Sample {
                    prompt: p.clone(),
                    params: s.params.clone(),
                    reply,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(tickets.len());
        for t in tickets {
            out.push(t.answer().await?);
        }
        out
    };
    // Teacher-forced scores of prompt + completion where log-probabilities were asked for.
    let want_scores = request.logprobs.is_some() || request.prompt_logprobs.is_some();
    let sequences: Vec<Vec<u32>> = prompts
        .iter()
        .zip(&completions)
        .flat_map(|(p, cs)| cs.iter().map(move |c| [p.as_slice(), c].concat()))
        .collect();
    let scores = if want_scores {
        let seqs = sequences.clone();
        Some(
            submit(m, |reply| Work::Score {
                sequences: seqs,
                reply,
            })
            .await?,
        )
    } else {
        None
    };
    let mut choices = Vec::with_capacity(sequences.len());
    let mut completion_tokens = 0;
    for (i, sequence) in sequences.iter().enumerate() {
        let prompt = &prompts[i / s.n];
        let generated = &sequence[prompt.len()..];
        completion_tokens += generated.len();
        let (text, cut) = cut_at_stop(&decode(m, generated)?, &stops);
        let stopped = cut || generated.len() < s.max_tokens;
        let prompt_text = if request.echo {
            decode(m, prompt)?
        } else {
            String::new()
        };
        let logprobs = match (&scores, request.logprobs) {
            (Some(all), Some(n)) => {
                let from = if request.echo { 0 } else { prompt.len() };
                let offset = if request.echo { 0 } else { prompt_text.len() };
                Some(legacy_logprobs(m, sequence, &all[i], from, offset, n)?)
            }
            _ => None,
        };
        let prompt_logprobs = match (&scores, request.prompt_logprobs) {
            (Some(all), Some(_)) => Some(vllm_prompt_logprobs(m, prompt, &all[i])?),
            _ => None,
        };
        choices.push(CompletionChoice {
            index: i,
            text: format!("{prompt_text}{text}"),
            logprobs,
            finish_reason: Some(if stopped { "stop" } else { "length" }.into()),
            prompt_logprobs,
        });
    }
    let prompt_tokens: usize = prompts.iter().map(Vec::len).sum();
    Ok(axum::Json(CompletionResponse {
        id: format!("cmpl-{}", state.next_id.fetch_add(1, Ordering::Relaxed)),
        object: "text_completion".into(),
        created: now(),
        model: request.model,
        choices,
        usage: Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }),
    }))
}

/// Chat log-probabilities of the answer `ids`, which follow `prompt_len`
/// prompt tokens in the scored sequence; `top_logprobs` holds the arg-max.
fn chat_logprobs(
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

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<ChatResponse>> {
    authorize(&state, &headers)?;
    let request: ChatRequest = parse(&body)?;
    refuse_stream(request.stream)?;
    let m = model(&state, &request.model)?;
    let chat = m.chat.as_ref().ok_or_else(|| {
        ApiError::bad(format!(
            "{:?} has no chat template; use /v1/completions",
            request.model
        ))
    })?;
    if request.messages.is_empty() {
        return Err(ApiError::bad("`messages` is empty"));
    }
    let messages: Vec<serde_json::Value> = request
        .messages
        .iter()
        .map(|msg| serde_json::json!({"role": msg.role, "content": msg.content}))
        .collect();
    let text = chat
        .render(&messages, true)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let mut prompt: Vec<u32> = m.tokenizer.bos.into_iter().collect();
    if m.tokenizer
        .bos_token
        .as_deref()
        .is_some_and(|b| !b.is_empty() && text.starts_with(b))
    {
        prompt.clear(); // the template wrote the BOS itself
    }
    prompt.extend(
        m.tokenizer
            .encode(&text)
            .map_err(|e| ApiError::bad(e.to_string()))?,
    );
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(256)
        .min(m.context.saturating_sub(prompt.len()));
    if max_tokens == 0 {
        return Err(ApiError::bad(format!(
            "the conversation fills the model's context of {} tokens",
            m.context
        )));
    }
    let stops = request.stop.clone().map(Stop::into_vec).unwrap_or_default();
    let s = sampling(
        m,
        request.n,
        max_tokens,
        request.temperature,
        request.top_p,
        request.top_k,
        request.seed,
        stops.clone(),
        Vec::new(),
    )?;
    let samples = submit(m, |reply| Work::Sample {
        prompt: prompt.clone(),
        params: s.params.clone(),
        reply,
    })
    .await?;
    let scores = if request.logprobs {
        let sequences = samples
            .iter()
            .map(|c| [prompt.as_slice(), c].concat())
            .collect();
        Some(submit(m, |reply| Work::Score { sequences, reply }).await?)
    } else {
        None
    };
    let mut choices = Vec::with_capacity(samples.len());
    let mut completion_tokens = 0;
    for (index, ids) in samples.iter().enumerate() {
        completion_tokens += ids.len();
        let (content, cut) = cut_at_stop(&decode(m, ids)?, &stops);
        let stopped = cut || ids.len() < max_tokens;
        let logprobs = match &scores {
            Some(all) => Some(chat_logprobs(
                m,
                ids,
                &all[index],
                prompt.len(),
                request.top_logprobs,
            )?),
            None => None,
        };
        choices.push(ChatChoice {
            index,
            message: ChatMessage {
                role: "assistant".into(),
                content,
            },
            finish_reason: if stopped { "stop" } else { "length" }.into(),
            logprobs,
        });
    }
    Ok(axum::Json(ChatResponse {
        id: format!("chatcmpl-{}", state.next_id.fetch_add(1, Ordering::Relaxed)),
        object: "chat.completion".into(),
        created: now(),
        model: request.model,
        choices,
        usage: Usage {
            prompt_tokens: prompt.len(),
            completion_tokens,
            total_tokens: prompt.len() + completion_tokens,
        },
    }))
}
