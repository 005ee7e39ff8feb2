//! HTTP to the endpoints: JSON in and out, the key as a bearer token, 429
//! and 5xx answers and dropped connections retried with exponential back-off
//! (honouring `Retry-After`).

use super::*;

#[derive(Debug)]
pub(super) struct Endpoint {
    pub(super) url: String,
    pub(super) key: Option<String>,
    /// The server refused `max_tokens: 0` (vLLM does): score with 1 and drop it.
    pub(super) one_token: AtomicBool,
    /// The server refused token-id prompts (llama-cpp-python): send text.
    pub(super) text_only: AtomicBool,
    /// The server answers one choice whatever `n` asks (llama-cpp-python).
    pub(super) one_choice: AtomicBool,
    /// First tokens of prompts whose echo was checked to be aligned.
    pub(super) aligned: Mutex<Vec<u32>>,
}

/// HTTP with retries, for one spec's endpoints.
#[derive(Debug)]
pub(super) struct Http {
    pub(super) agent: ureq::Agent,
    pub(super) retries: u32,
    pub(super) key_env: String,
}

impl Http {
    pub(super) fn new(spec: &RemoteSpec) -> Http {
        Http {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(spec.timeout_s.max(1)))
                .max_idle_connections_per_host(spec.concurrency.max(1) * 2)
                .build(),
            retries: spec.retries,
            key_env: spec.key_env().to_string(),
        }
    }

    pub(super) fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        path: &str,
    ) -> Result<T> {
        self.request(endpoint, path, None)
    }

    pub(super) fn post<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        let body = serde_json::to_value(body).map_err(|e| remote(e.to_string()))?;
        self.request(endpoint, path, Some(&body))
    }

    /// One request with retries: 429, 5xx and transport failures are retried
    /// after 0.5 s, 1 s, 2 s ... (at most 30 s, or what `Retry-After` asks).
    fn request<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let url = format!("{}{path}", endpoint.url);
        let mut last = String::new();
        for attempt in 0..=self.retries {
            let mut req = match body {
                Some(_) => self.agent.post(&url),
                None => self.agent.get(&url),
            };
            if let Some(key) = &endpoint.key {
                req = req.set("Authorization", &format!("Bearer {key}"));
            }
            let result = match body {
                Some(b) => req.send_json(b),
                None => req.call(),
            };
            let mut wait = Duration::from_millis(500 << attempt.min(6));
            match result {
                Ok(response) => {
                    let text = response
                        .into_string()
                        .map_err(|e| remote(format!("{url}: cannot read the answer: {e}")))?;
                    return serde_json::from_str(&text).map_err(|e| {
                        remote_fix(
                            format!("{url}: unexpected answer ({e}): {}", preview(&text)),
                            "check that this is an OpenAI-compatible server",
                        )
                    });
                }
                Err(ureq::Error::Status(code, response)) => {
                    if let Some(seconds) = response
                        .header("retry-after")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                    {
                        wait = Duration::from_secs(seconds);
                    }
                    let text = response.into_string().unwrap_or_default();
                    let message = serde_json::from_str::<ErrorBody>(&text)
                        .map(|b| b.error.message)
                        .unwrap_or_else(|_| preview(&text));
                    last = format!("{url}: HTTP {code}: {message}");
                    if code == 401 || code == 403 {
                        return Err(remote_fix(
                            last,
                            format!(
                                "set the API key in ${}, or store it in the OS keyring for {} (model key)",
                                self.key_env, endpoint.url
                            ),
                        ));
                    }
                    // A validation error is the request's fault whatever the
                    // status (llama-cpp-python answers 500): no retry helps.
                    if (code != 429 && code < 500) || message.contains("validation error") {
                        return Err(remote(last));
                    }
                }
                Err(ureq::Error::Transport(t)) => {
                    last = t.to_string(); // names the URL
                }
            }
            if attempt < self.retries {
                std::thread::sleep(wait.min(Duration::from_secs(30)));
            }
        }
        Err(remote_fix(
            format!("{last} (after {} attempts)", self.retries + 1),
            format!("check that the server runs and answers at {}", endpoint.url),
        ))
    }
}

pub(super) fn endpoints(spec: &RemoteSpec) -> Vec<Endpoint> {
    spec.endpoints
        .iter()
        .map(|url| Endpoint {
            url: url.clone(),
            key: spec.api_key(url),
            one_token: AtomicBool::new(false),
            text_only: AtomicBool::new(false),
            one_choice: AtomicBool::new(false),
            aligned: Mutex::new(Vec::new()),
        })
        .collect()
}

/// The first 200 characters of an answer, for an error message.
fn preview(text: &str) -> String {
    let t = text.trim();
    if t.chars().count() > 200 {
        format!("{}...", t.chars().take(200).collect::<String>())
    } else {
        t.to_string()
    }
}
