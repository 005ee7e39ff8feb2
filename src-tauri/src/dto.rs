//! What crosses the IPC boundary and is not already a `spectrum-app` type:
//! requests from the UI, job events, errors. TypeScript types for all of them
//! are generated (`bindings.rs`) into `ui/src/lib/bindings.ts`.

use serde::{Deserialize, Serialize};
use spectrum_app::{DeviceSpec, EvalSettings, Family, Profile, PromptFormat, RunSpec, Split};
use ts_rs::TS;

/// An error as the UI shows it: what went wrong and what to do next.
#[derive(Debug, Clone, Serialize, TS)]
pub struct UiError {
    /// `bad_input`, `not_found`, `not_allowed`, `cancelled`, `busy` or `internal`.
    pub code: String,
    pub message: String,
    /// The fix, when the engine names one (its `(fix: ...)` part).
    pub fix: Option<String>,
}

impl UiError {
    pub fn new(code: &str, message: impl Into<String>) -> UiError {
        let message: String = message.into();
        let (message, fix) = split_fix(&message);
        UiError {
            code: code.into(),
            message,
            fix,
        }
    }

    pub fn internal(message: impl Into<String>) -> UiError {
        UiError::new("internal", message)
    }

    pub fn not_allowed(path: &std::path::Path) -> UiError {
        UiError::new(
            "not_allowed",
            format!(
                "{} was not chosen in a dialog or dropped on the window (fix: drop it on the window or use the Browse button)",
                path.display()
            ),
        )
    }
}

impl From<anyhow::Error> for UiError {
    fn from(e: anyhow::Error) -> UiError {
        if spectrum_app::is_cancelled(&e) {
            return UiError::new("cancelled", e.to_string());
        }
        let text = format!("{e:#}");
        let code = if text.contains("no dataset")
            || text.contains("no model")
            || text.contains("no run")
            || text.contains("no task")
        {
            "not_found"
        } else {
            "bad_input"
        };
        UiError::new(code, text)
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Splits `"... (fix: do this) ..."` into the message and the fix.
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

/// A job's life, as sent on its channel.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// Free-text progress ("downloading...", "loading the model").
    Note {
        text: String,
    },
    Import {
        progress: ImportProgress,
    },
    Train {
        progress: spectrum_app::TrainProgress,
    },
    Eval {
        progress: spectrum_app::EvalProgress,
    },
    /// The job's result: see the command that started it for its type.
    Done {
        result: serde_json::Value,
    },
    Failed {
        error: UiError,
    },
    Cancelled,
}

#[derive(Debug, Clone, Copy, Serialize, TS)]
pub struct ImportProgress {
    pub bytes_done: f64,
    pub bytes_total: f64,
    pub rows: f64,
}

/// The `files-dropped` event: paths dropped on the window (or built by the tour).
#[derive(Debug, Clone, Serialize, TS)]
pub struct Dropped {
    pub paths: Vec<String>,
    /// Every path is a GGUF file or a model folder (has config.json): the
    /// Models view takes them; otherwise the Library's import preview does.
    pub model: bool,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct JobInfo {
    pub id: u64,
    /// `preview`, `import`, `model`, `train`, `eval`, `report`.
    pub kind: String,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct AppInfo {
    pub version: String,
    pub store: String,
    /// Nothing imported yet: the UI offers the tour.
    pub first_run: bool,
    /// How far the store is along the main job, for the tour's checklist.
    pub tour: Tour,
    /// Training and evaluation runs left `running` by a process that is gone.
    pub interrupted: Vec<spectrum_app::RunRecord>,
}

#[derive(Debug, Clone, Copy, Serialize, TS)]
pub struct Tour {
    pub datasets: usize,
    pub models: usize,
    /// Finished training runs.
    pub trained: usize,
    /// Finished evaluation runs.
    pub evaluated: usize,
}

/// How to read dropped or picked files.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct ImportOptionsDto {
    pub name: Option<String>,
    /// Force a shape (`sequences`, `distribution`...) instead of detecting it.
    pub shape: Option<String>,
    pub skip_invalid: bool,
    /// Split and category for tasks no definition row describes.
    pub split: Split,
    pub category: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct Preset {
    pub name: String,
    pub spec: RunSpec,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct TrainDefaults {
    pub presets: Vec<Preset>,
}

#[derive(Debug, Clone, Deserialize, TS)]
pub struct TrainRequestDto {
    pub spec: RunSpec,
    /// A registered model's name.
    pub model: String,
    pub name: Option<String>,
    /// Where the rows of chat turn tokens added to a base model without them
    /// start (METHOD.md §2): a registered instruct sibling's name; `None`: the
    /// mean embedding row.
    pub init_tokens_from: Option<String>,
}

#[derive(Debug, Clone, Deserialize, TS)]
pub struct EvalRequestDto {
    /// A registered model's name.
    pub model: String,
    pub families: Vec<Family>,
    /// `held-out` (default when empty), `train`, `all`, task or dataset names.
    pub tasks: Vec<String>,
    pub format: PromptFormat,
    pub profile: Profile,
    /// The profile's settings, edited; `None`: the profile's own.
    pub settings: Option<EvalSettings>,
    pub device: DeviceSpec,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct EvalDefaults {
    pub profiles: Vec<(Profile, EvalSettings)>,
}

#[derive(Debug, Clone, Deserialize, TS)]
pub struct ReportRequestDto {
    pub runs: Vec<String>,
    pub baseline: Option<String>,
    /// Empty: every section.
    pub sections: Vec<String>,
    /// A path the save dialog returned; `None`: `reports/` beside the store.
    pub out: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct ReportOptions {
    pub sections: Vec<String>,
}

/// A model on OpenAI-compatible servers (vLLM, SGLang, llama.cpp, `spectrum serve`).
#[derive(Debug, Clone, Deserialize, TS)]
pub struct RemoteModelRequest {
    /// Base URLs ending in /v1, separated by commas or spaces.
    pub endpoints: String,
    /// The name the servers know the model by.
    pub model: String,
    /// Name in the registry (default: the served name).
    pub name: Option<String>,
    /// A granted folder holding tokenizer.json (default: asked of the server).
    pub tokenizer: Option<String>,
    /// The environment variable holding the API key (default OPENAI_API_KEY).
    pub api_key_env: Option<String>,
    /// Requests in flight per endpoint.
    pub concurrency: Option<u32>,
}

/// What a pick dialog is for.
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PickKind {
    /// Dataset files (JSONL, CSV, Parquet...) or a folder of them.
    DataFiles,
    DataFolder,
    /// A Hugging Face model folder.
    ModelFolder,
    GgufFile,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_is_split_from_the_message() {
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
    }

    #[test]
    fn engine_errors_get_codes() {
        let e = UiError::from(anyhow::anyhow!("no model \"q\" (fix: add it)"));
        assert_eq!(e.code, "not_found");
        assert_eq!(e.fix.as_deref(), Some("add it"));
        let e = UiError::from(anyhow::Error::new(spectrum_app::Cancelled("training")));
        assert_eq!(e.code, "cancelled");
    }
}
