//! Errors of the model engine: every one names the file or the operation.

use std::path::{Path, PathBuf};

use spectrum_core::{ErrorCode, Explain, Fix, Problem};

#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Unsupported { path: PathBuf, message: String },
    /// Something a file or folder should hold; `fix` says where it comes from.
    #[error("{}: missing {what}", path.display())]
    Missing {
        path: PathBuf,
        what: String,
        fix: String,
    },
    /// A named tensor that does not fit where it goes (a merge, a restore).
    #[error("{name}: {problem}")]
    Tensor { name: String, problem: String },
    /// Nothing to score or continue.
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    /// The tokenizer failed to load, encode or decode.
    #[error("tokenizer: cannot {what}")]
    Tokenizer {
        what: &'static str,
        #[source]
        source: tokenizers::Error,
    },
    /// The model's chat template does not parse or fails to render.
    #[error("chat template: {what}")]
    Template {
        what: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("hf:{repo}: cannot download from the Hugging Face hub: {message}")]
    Hub { repo: String, message: String },
    /// A remote model server failed or answered something unusable.
    #[error("{0}")]
    Remote(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A failure with a known way out.
    #[error(transparent)]
    Problem(#[from] Problem),
}

impl Explain for LmError {
    fn code(&self) -> ErrorCode {
        match self {
            LmError::Candle(_) => ErrorCode::Internal,
            LmError::Problem(p) => p.code,
            _ => ErrorCode::BadInput,
        }
    }

    fn fix(&self) -> Option<Fix> {
        match self {
            LmError::Missing { fix, .. } => Some(Fix::say(fix.clone())),
            LmError::Hub { .. } => Some(Fix::say(
                "check the name and the network; offline, download the folder on a machine \
                 that reaches the hub and add it as a local model",
            )),
            LmError::EmptyPrompt => Some(Fix::say("give some text to continue")),
            LmError::Problem(p) => p.fix.clone(),
            _ => None,
        }
    }
}

impl LmError {
    pub fn io(path: &Path, source: std::io::Error) -> LmError {
        LmError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn tensor(name: &str, problem: impl std::fmt::Display) -> LmError {
        LmError::Tensor {
            name: name.to_string(),
            problem: problem.to_string(),
        }
    }

    pub fn bad(path: &Path, message: impl Into<String>) -> LmError {
        LmError::BadFile {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = LmError> = std::result::Result<T, E>;
