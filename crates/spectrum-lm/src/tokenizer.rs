//! Tokenizers: Hugging Face `tokenizer.json` plus what `tokenizer_config.json`
//! says about special tokens and the chat template.

use std::path::Path;

use serde::Deserialize;

use crate::{LmError, Result};

/// A tokenizer and the facts about it the prompt templates need.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Id of the BOS token the tokenizer adds (if it adds one).
    pub bos: Option<u32>,
    pub eos: Vec<u32>,
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

/// The parts of `tokenizer_config.json` we read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenizerConfig {
    #[serde(default)]
    pub chat_template: Option<serde_json::Value>,
    #[serde(default)]
    pub bos_token: Option<serde_json::Value>,
    #[serde(default)]
    pub eos_token: Option<serde_json::Value>,
    #[serde(default)]
    pub add_bos_token: Option<bool>,
}

/// `"<s>"` or `{"content": "<s>", ...}`.
fn token_text(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Object(o)) => o
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        _ => None,
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and, if present, `tokenizer_config.json` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<TextTokenizer> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(LmError::Missing {
                path: dir.to_path_buf(),
                what: "tokenizer.json".into(),
                fix: "copy the model's tokenizer.json into the folder (it comes with every Hugging Face model)".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| LmError::bad(&path, format!("not a tokenizer: {e}")))?;
        let config_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfig = if config_path.exists() {
            let text =
                std::fs::read_to_string(&config_path).map_err(|e| LmError::io(&config_path, e))?;
            serde_json::from_str(&text)
                .map_err(|e| LmError::bad(&config_path, format!("not a tokenizer config: {e}")))?
        } else {
            TokenizerConfig::default()
        };
        Ok(TextTokenizer::new(inner, &config))
    }

    pub fn new(inner: tokenizers::Tokenizer, config: &TokenizerConfig) -> TextTokenizer {
        let bos_token = token_text(&config.bos_token);
        let eos_token = token_text(&config.eos_token);
        // A tokenizer adds BOS if its post-processor does; probe it.
        let probe = inner.encode("a", true).ok();
        let plain = inner.encode("a", false).ok();
        let bos = match (probe, plain) {
            (Some(with), Some(without)) if with.get_ids().len() > without.get_ids().len() => {
                with.get_ids().first().copied()
            }
            _ => None,
        };
        let eos = eos_token
            .as_deref()
            .and_then(|t| inner.token_to_id(t))
            .into_iter()
            .collect();
        let chat_template = match &config.chat_template {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: take "default".
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| {
                    t.get("template")
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                }),
            _ => None,
        };
        TextTokenizer {
            inner,
            bos,
            eos,
            chat_template,
            bos_token,
            eos_token,
        }
    }

    /// Token ids of `text` with no special tokens added (special-token text such
    /// as `<|im_start|>` still maps to its id).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|source| LmError::Tokenizer {
                what: "encode the text",
                source,
            })?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|source| LmError::Tokenizer {
                what: "decode the tokens",
                source,
            })
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
