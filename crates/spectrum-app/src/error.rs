//! Errors as they cross to a front end: a code to act on, the message, and
//! the way out as data, which each front end phrases in its own words (a
//! command in the CLI, a button in the app). Use cases return `anyhow`
//! errors; [`AppError::of`] finds the structured error in the chain.

use serde::Serialize;
pub use spectrum_core::{ErrorCode, Explain, Fix, Listing, Problem};
use spectrum_suite::import::ImportError;

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
    /// chain (`context: cause`); the code and fix come from the first error in
    /// it that explains itself (ours, a [`Problem`], or a library's error enum).
    /// An error nobody explains is bad input without a fix.
    pub fn of(error: &anyhow::Error) -> AppError {
        let message = format!("{error:#}");
        if crate::is_cancelled(error) {
            return AppError::new(ErrorCode::Cancelled, message);
        }
        let explained = error
            .chain()
            .find_map(|cause| -> Option<(ErrorCode, Option<Fix>)> {
                fn of<E: Explain>(e: &E) -> (ErrorCode, Option<Fix>) {
                    (e.code(), e.fix())
                }
                if let Some(e) = cause.downcast_ref::<AppError>() {
                    return Some((e.code, e.fix.clone()));
                }
                let d = cause;
                d.downcast_ref::<Problem>()
                    .map(of)
                    .or_else(|| d.downcast_ref::<spectrum_store::StoreError>().map(of))
                    .or_else(|| d.downcast_ref::<ImportError>().map(of))
                    .or_else(|| d.downcast_ref::<spectrum_lm::LmError>().map(of))
                    .or_else(|| d.downcast_ref::<spectrum_train::TrainError>().map(of))
                    .or_else(|| d.downcast_ref::<spectrum_eval::EvalError>().map(of))
                    .or_else(|| {
                        d.downcast_ref::<spectrum_train::SpecError>()
                            .map(|_| (ErrorCode::BadInput, None))
                    })
            });
        let (code, fix) = explained.unwrap_or((ErrorCode::BadInput, None));
        AppError { code, message, fix }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> AppError {
        AppError::of(&e)
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use spectrum_store::StoreError;

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
    fn a_cause_is_said_once() {
        let io = || std::io::Error::other("disk full");
        let store = StoreError::CreateDir {
            path: "/s".into(),
            source: io(),
        };
        let e = anyhow::Error::new(store).context("opening the store");
        assert_eq!(
            AppError::of(&e).message,
            "opening the store: cannot create the folder for the store /s: disk full"
        );
        let lm = spectrum_lm::LmError::Io {
            path: "/m/config.json".into(),
            source: io(),
        };
        let e = anyhow::Error::new(spectrum_train::TrainError::Lm(lm));
        assert_eq!(
            AppError::of(&e).message,
            "cannot read /m/config.json: disk full"
        );
    }

    #[test]
    fn library_errors_explain_themselves_through_context() {
        // A problem raised deep in a library, wrapped twice.
        let lm = spectrum_lm::LmError::from(Problem::setting(
            "no turn tokens",
            "template",
            "the colon format",
        ));
        let e = anyhow::Error::new(spectrum_train::TrainError::Lm(lm)).context("cannot score");
        let shown = AppError::of(&e);
        assert_eq!(shown.message, "cannot score: no turn tokens");
        assert_eq!(
            (shown.code, shown.fix),
            (
                ErrorCode::BadInput,
                Some(Fix::setting("template", "the colon format"))
            )
        );
        // An error nobody explains: bad input, no fix, and no text parsed.
        let shown = AppError::of(&anyhow::anyhow!("bad value (fix: use 3)"));
        assert_eq!(shown.code, ErrorCode::BadInput);
        assert_eq!(shown.message, "bad value (fix: use 3)");
        assert_eq!(shown.fix, None);
    }
}
