//! Errors as data: what kind of failure ([`ErrorCode`]) and the way out
//! ([`Fix`]). A library raises a [`Problem`] where a failure has a way out the
//! user can take, or implements [`Explain`] on its own error enum; the app
//! layer reads either from an error chain. Messages never carry their fix as
//! text: each front end phrases the [`Fix`] in its own words.

use serde::Serialize;

use crate::RunKind;

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
    /// Another process is working on it (a run it trains or evaluates):
    /// wait for it, or stop that process.
    Busy,
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
    /// Change one setting of the work asked for. `setting` is the setting's
    /// snake_case name (`learning_rate`, `family`, `tokenizer`: a flag in the
    /// CLI, a field in the app); `advice` says to what, in words that name no
    /// front end's controls.
    Setting { setting: String, advice: String },
    /// Anything else, in words that name no front end's controls.
    Say { text: String },
}

impl Fix {
    pub fn setting(setting: &str, advice: impl Into<String>) -> Fix {
        Fix::Setting {
            setting: setting.to_string(),
            advice: advice.into(),
        }
    }

    pub fn say(text: impl Into<String>) -> Fix {
        Fix::Say { text: text.into() }
    }
}

/// An error with a known kind and, where there is one, the way out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    pub code: ErrorCode,
    pub message: String,
    pub fix: Option<Fix>,
}

impl Problem {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Problem {
        Problem {
            code,
            message: message.into(),
            fix: None,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Problem {
        Problem::new(ErrorCode::BadInput, message)
    }

    pub fn not_found(message: impl Into<String>, what: Listing) -> Problem {
        Problem::new(ErrorCode::NotFound, message).with_fix(Fix::List { what })
    }

    pub fn internal(message: impl Into<String>) -> Problem {
        Problem::new(ErrorCode::Internal, message)
    }

    /// Bad input that one setting would fix.
    pub fn setting(
        message: impl Into<String>,
        setting: &str,
        advice: impl Into<String>,
    ) -> Problem {
        Problem::bad_input(message).with_fix(Fix::setting(setting, advice))
    }

    /// Bad input with a way out in plain words.
    pub fn say(message: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem::bad_input(message).with_fix(Fix::say(fix))
    }

    pub fn with_fix(mut self, fix: Fix) -> Problem {
        self.fix = Some(fix);
        self
    }
}

/// An error enum that knows what kind of failure each of its variants is,
/// and the way out where it has one.
pub trait Explain {
    fn code(&self) -> ErrorCode;
    fn fix(&self) -> Option<Fix>;
}

impl Explain for Problem {
    fn code(&self) -> ErrorCode {
        self.code
    }

    fn fix(&self) -> Option<Fix> {
        self.fix.clone()
    }
}

/// An error and its sources as one line, `what failed: why: why`, for the
/// places that show an error as text (an HTTP answer, a warning). Messages do
/// not repeat their source, so each cause appears once.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read /m")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "cannot read /m: disk full");
    }

    #[test]
    fn fixes_cross_as_tagged_data() {
        let fix = Fix::setting("learning_rate", "a smaller value, e.g. 1e-4");
        assert_eq!(
            serde_json::to_value(&fix).expect("json"),
            serde_json::json!({"kind": "setting", "setting": "learning_rate", "advice": "a smaller value, e.g. 1e-4"})
        );
        let p = Problem::setting("the loss became NaN", "learning_rate", "lower it");
        assert_eq!(p.to_string(), "the loss became NaN");
        assert_eq!(p.code(), ErrorCode::BadInput);
        assert_eq!(p.fix(), Some(Fix::setting("learning_rate", "lower it")));
    }
}
