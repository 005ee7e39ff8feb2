//! Where a remote model is served: `openai:URL[,URL...]#MODEL` specs and the
//! folder's `remote.json`.

use super::*;

/// The file in a remote model's folder that says where it is served.
pub const SPEC_FILE: &str = "remote.json";
/// Where and how a remote model is served (the folder's `remote.json`).
/// Never holds a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// Base URLs, each ending in `/v1`.
    pub endpoints: Vec<String>,
    /// The model name the servers know it by.
    pub model: String,
    /// Requests in flight per endpoint.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds before a request is given up (and retried).
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Retries after a 429, a 5xx or a dropped connection.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The environment variable holding the API key (default `OPENAI_API_KEY`).
    #[serde(default)]
    pub api_key_env: Option<String>,
}

fn default_concurrency() -> usize {
    4
}
fn default_timeout() -> u64 {
    300
}
fn default_retries() -> u32 {
    4
}

impl RemoteSpec {
    /// Parses `openai:URL[,URL...]#MODEL`.
    pub fn parse(spec: &str) -> Result<RemoteSpec> {
        let usage = "write it as openai:http://HOST:PORT/v1#MODEL (several endpoints: openai:URL1,URL2#MODEL)";
        let bad = |message: String| remote_fix(message, usage);
        let rest = spec
            .strip_prefix("openai:")
            .ok_or_else(|| bad(format!("{spec:?} is not a remote model")))?;
        let (urls, model) = rest.rsplit_once('#').ok_or_else(|| {
            remote_fix(
                format!("{spec:?} names no model after '#'"),
                format!("{usage}; a server lists the names it knows at URL/models"),
            )
        })?;
        if model.trim().is_empty() {
            return Err(bad(format!("{spec:?}: the model name after '#' is empty")));
        }
        let endpoints: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(bad(format!("{spec:?} names no endpoint")));
        }
        for url in &endpoints {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(format!("{url:?} is not an http:// or https:// URL")));
            }
        }
        Ok(RemoteSpec {
            endpoints,
            model: model.trim().to_string(),
            concurrency: default_concurrency(),
            timeout_s: default_timeout(),
            retries: default_retries(),
            api_key_env: None,
        })
    }

    /// The `openai:...#model` form.
    pub fn source(&self) -> String {
        format!("openai:{}#{}", self.endpoints.join(","), self.model)
    }

    /// Reads `remote.json` from a remote model's folder.
    pub fn read(dir: &Path) -> Result<RemoteSpec> {
        let path = dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| LmError::io(&path, e))?;
        let spec: RemoteSpec = serde_json::from_str(&text).map_err(|e| {
            remote_fix(
                format!("{}: {e}", path.display()),
                "remove the model and add it again as openai:URL#MODEL",
            )
        })?;
        if spec.endpoints.is_empty() {
            return Err(LmError::bad(&path, "no endpoints"));
        }
        Ok(spec)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(SPEC_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| remote(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| LmError::io(&path, e))
    }
}

/// Whether `dir` holds a remote model.
pub fn is_remote(dir: &Path) -> bool {
    dir.join(SPEC_FILE).is_file()
}
