//! Errors of the model engine: every one names the file or the operation.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Unsupported { path: PathBuf, message: String },
    #[error("{}: missing {what} (fix: {fix})", path.display())]
    Missing {
        path: PathBuf,
        what: String,
        fix: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("template: {0}")]
    Template(String),
    #[error("device: {0}")]
    Device(String),
    #[error(
        "hf:{repo}: cannot download from the Hugging Face hub: {message} (fix: check the name and your network; \
         offline, download the folder elsewhere and `spectrum model add DIR`)"
    )]
    Hub { repo: String, message: String },
    /// A remote model server failed or answered something unusable.
    #[error("{0}")]
    Remote(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl LmError {
    pub fn io(path: &Path, source: std::io::Error) -> LmError {
        LmError::Io {
            path: path.to_path_buf(),
            source,
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
