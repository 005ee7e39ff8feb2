//! The HTTP routes: errors as OpenAI error bodies, auth, the model list and
//! tokenizer, and the completions and chat completions handlers.

use super::*;

/// An API error as OpenAI shapes it.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) code: Option<&'static str>,
}

impl ApiError {
    pub(super) fn bad(message: impl Into<String>) -> ApiError {
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

pub(super) type ApiResult<T> = std::result::Result<T, ApiError>;

pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
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

pub(super) fn model<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a Model> {
    state.models.get(name).ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no model {name:?} here; this server serves {}",
            state.models.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        code: Some("model_not_found"),
    })
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the request body is not valid: {e}")))
}

pub(super) async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route; this server answers GET /v1/models, POST /v1/completions and POST /v1/chat/completions".into(),
        code: None,
    }
}

pub(super) async fn list_models(
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

pub(super) async fn tokenizer_files(
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
pub(super) struct Ticket<'a, T> {
    pub(super) rx: oneshot::Receiver<std::result::Result<T, String>>,
    pub(super) _pending: Pending<'a>,
}

pub(super) fn failed(message: String) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
        code: None,
    }
}

/// Queues work now (so the pieces of one request batch together), or answers
/// 503 when the model has `max_queue` pieces waiting.
pub(super) fn enqueue<T>(
    m: &Model,
    make: impl FnOnce(Reply<T>) -> Work,
) -> ApiResult<Ticket<'_, T>> {
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
    pub(super) async fn answer(self) -> ApiResult<T> {
        self.rx
            .await
            .map_err(|_| failed("the model's worker has stopped".into()))?
            .map_err(failed)
    }
}

pub(super) async fn submit<T>(m: &Model, make: impl FnOnce(Reply<T>) -> Work) -> ApiResult<T> {
    enqueue(m, make)?.answer().await
}

pub(super) fn prompts(m: &Model, prompt: Option<Prompt>) -> ApiResult<Vec<Vec<u32>>> {
    let encode = |text: &str| -> ApiResult<Vec<u32>> {
        let mut ids: Vec<u32> = m.tokenizer.bos.into_iter().collect();
        ids.extend(
            m.tokenizer
                .encode(text)
                .map_err(|e| ApiError::bad(spectrum_core::chain(&e)))?,
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

pub(super) async fn completions(
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
    let s = sampling(m, &request.sampling, max_tokens)?;
    let stops = &s.params.stop_strings;
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
        let (text, cut) = cut_at_stop(&decode(m, generated)?, stops);
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

pub(super) async fn chat_completions(
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
        .map_err(|e| ApiError::bad(spectrum_core::chain(&e)))?;
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
            .map_err(|e| ApiError::bad(spectrum_core::chain(&e)))?,
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
    let s = sampling(m, &request.sampling, max_tokens)?;
    let stops = &s.params.stop_strings;
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
        let (content, cut) = cut_at_stop(&decode(m, ids)?, stops);
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
