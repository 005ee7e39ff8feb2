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

mod logprobs;
mod params;
mod routes;
mod worker;

use logprobs::*;
use params::*;
use routes::*;
use worker::*;

use crate::wire::{
    ChatChoice, ChatLogprobs, ChatMessage, ChatRequest, ChatResponse, ChatTokenLogprob,
    ChatTopLogprob, CompletionChoice, CompletionRequest, CompletionResponse, ErrorBody,
    ErrorDetail, Logprobs, ModelCard, ModelList, Prompt, PromptLogprob, SamplingRequest, Stop,
    TokenizerFiles, Usage,
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
        let listener =
            std::net::TcpListener::bind((options.host.as_str(), options.port)).map_err(|e| {
                LmError::from(spectrum_core::Problem::setting(
                    format!("cannot listen on {}:{}: {e}", options.host, options.port),
                    "port",
                    "another port, or stop what uses this one",
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
