//! Errors as they cross to a front end: a code to act on, the message, and
//! the way out as data, which each front end phrases in its own words (a
//! command in the CLI, a button in the app). Use cases return `anyhow`
//! errors; [`AppError::of`] finds the structured error in the chain.

use serde::Serialize;
use spectrum_store::{RunKind, StoreError};
use spectrum_suite::import::ImportError;

/// What kind of failure it is. Front ends decide how to show an error from
/// this, never from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The input (a file, a setting, a name) is wrong; the fix says how.
    BadInput,
    /// A named dataset, task, model or run does not exist.
    NotFound,
    /// A path the front end may not touch (the desktop app's grants).
    NotAllowed,
    Cancelled,
    /// The work failed for a reason the user cannot fix (a bug, an I/O failure).
    Internal,
}

/// What a list fix lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    Datasets,
    Tasks,
    Models,
    Runs,
}

impl Listing {
    pub fn as_str(self) -> &'static str {
        match self {
            Listing::Datasets => "datasets",
            Listing::Tasks => "tasks",
            Listing::Models => "models",
            Listing::Runs => "runs",
        }
    }
}

/// The way out of an error, as data.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fix {
    /// Look at what exists and pick one of those names.
    List { what: Listing },
    /// Import task files (or build the built-in suite).
    Import,
    /// Register a model (a folder, a GGUF file or the default model).
    AddModel,
    /// Use another store file: this one is not a Spectrum Studio store.
    OtherStore,
    /// Install a newer Spectrum Studio: the store comes from one.
    Upgrade,
    /// Continue run `run` where it stopped.
    Resume { run: i64, run_kind: RunKind },
    /// Anything else, in words that name no front end's controls.
    Say { text: String },
}

/// An error a front end shows: what went wrong and what to do next.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub fix: Option<Fix>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AppError {
        AppError {
            code,
            message: message.into(),
            fix: None,
        }
    }

    pub fn not_found(message: impl Into<String>, what: Listing) -> AppError {
        AppError::new(ErrorCode::NotFound, message).with_fix(Fix::List { what })
    }

    pub fn bad_input(message: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::BadInput, message)
    }

    pub fn internal(message: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::Internal, message)
    }

    pub fn with_fix(mut self, fix: Fix) -> AppError {
        self.fix = Some(fix);
        self
    }

    /// The error to show for a failed use case: the message is the whole
    /// chain (`context: cause`); the code and fix come from the first
    /// structured error in it (ours, the store's, the importer's). Errors not
    /// yet structured keep a `(fix: ...)` part in their text, which becomes a
    /// [`Fix::Say`].
    pub fn of(error: &anyhow::Error) -> AppError {
        let text = format!("{error:#}");
        if crate::is_cancelled(error) {
            return AppError::new(ErrorCode::Cancelled, text);
        }
        for cause in error.chain() {
            if let Some(e) = cause.downcast_ref::<AppError>() {
                return AppError {
                    message: text,
                    ..e.clone()
                };
            }
            if let Some(e) = cause.downcast_ref::<StoreError>() {
                let (code, fix) = store_fix(e);
                return AppError {
                    code,
                    message: text,
                    fix,
                };
            }
            if cause.downcast_ref::<ImportError>().is_some()
                || cause.downcast_ref::<spectrum_train::SpecError>().is_some()
            {
                return AppError::bad_input(text);
            }
        }
        let (message, fix) = split_fix(&text);
        AppError {
            code: ErrorCode::BadInput,
            message,
            fix: fix.map(|text| Fix::Say { text }),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> AppError {
        AppError::of(&e)
    }
}

fn store_fix(e: &StoreError) -> (ErrorCode, Option<Fix>) {
    match e {
        StoreError::NotADatabase { .. } | StoreError::ForeignDatabase { .. } => {
            (ErrorCode::BadInput, Some(Fix::OtherStore))
        }
        StoreError::NewerSchema { .. } => (ErrorCode::BadInput, Some(Fix::Upgrade)),
        StoreError::Ambiguous(_) => (
            ErrorCode::BadInput,
            Some(Fix::Say {
                text: "name one by its id".into(),
            }),
        ),
        StoreError::CreateDir { .. } | StoreError::Sqlite { .. } | StoreError::Corrupt(_) => {
            (ErrorCode::Internal, None)
        }
    }
}

/// Splits `"... (fix: do this) ..."` into the message and the fix: the text
/// of errors that do not carry their fix as data yet.
pub fn split_fix(text: &str) -> (String, Option<String>) {
    let Some(start) = text.find("(fix: ") else {
        return (text.to_string(), None);
    };
    let rest = &text[start + 6..];
    // The fix ends at its matching parenthesis (fixes may contain `--flag (x)`).
    let mut depth = 1;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(end) = end else {
        return (text.to_string(), None);
    };
    let fix = rest[..end].trim().to_string();
    let message = format!("{}{}", text[..start].trim_end(), &rest[end + 1..]);
    (message.trim().to_string(), Some(fix))
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn the_structured_error_in_the_chain_gives_code_and_fix() {
        let e = anyhow::Error::new(AppError::not_found("no dataset \"x\"", Listing::Datasets))
            .context("cannot train");
        let shown = AppError::of(&e);
        assert_eq!(shown.code, ErrorCode::NotFound);
        assert_eq!(shown.message, "cannot train: no dataset \"x\"");
        assert_eq!(
            shown.fix,
            Some(Fix::List {
                what: Listing::Datasets
            })
        );
        // A store error keeps its meaning through context.
        let e = Err::<(), _>(StoreError::NewerSchema {
            path: "/s".into(),
            found: 9,
            supported: 5,
        })
        .context("opening the store")
        .expect_err("err");
        assert_eq!(AppError::of(&e).fix, Some(Fix::Upgrade));
        let e = anyhow::Error::new(crate::Cancelled("training"));
        assert_eq!(AppError::of(&e).code, ErrorCode::Cancelled);
    }

    #[test]
    fn a_fix_still_in_the_text_is_split_from_the_message() {
        let (m, f) = split_fix(
            "no dataset \"x\" in /s (fix: `spectrum datasets list` shows ids (and names)) now",
        );
        assert_eq!(m, "no dataset \"x\" in /s now");
        assert_eq!(
            f.as_deref(),
            Some("`spectrum datasets list` shows ids (and names)")
        );
        assert_eq!(split_fix("plain").1, None);
        assert_eq!(split_fix("open (fix: never closed").1, None);
        let shown = AppError::of(&anyhow::anyhow!("bad value (fix: use 3)"));
        assert_eq!(shown.code, ErrorCode::BadInput);
        assert_eq!(shown.message, "bad value");
        assert_eq!(
            shown.fix,
            Some(Fix::Say {
                text: "use 3".into()
            })
        );
    }
}
