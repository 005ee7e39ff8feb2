//! Import errors. A [`RowError`] is one bad row: it names the file, the line or
//! row, the field, what was expected and how to fix it. An [`ImportError`] stops
//! the import of a file as a whole.

use std::fmt;
use std::path::PathBuf;

use spectrum_core::{ErrorCode, Explain, Fix};

/// Where in a file a row starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(tag = "unit", content = "number", rename_all = "snake_case")]
pub enum Location {
    /// A line of a JSONL or CSV file (1-based, the CSV header is line 1).
    Line(u64),
    /// An element of a JSON array (1-based) and the line it starts on.
    Element { index: u64, line: u64 },
    /// A row of a Parquet file (1-based).
    Row(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Element { index, line } => write!(f, "element {index} (line {line})"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// What is wrong with one row, before the file and location are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct RowProblem {
    pub field: Option<String>,
    pub message: String,
    pub fix: String,
}

impl RowProblem {
    pub fn new(
        field: Option<&str>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> RowProblem {
        RowProblem {
            field: field.map(str::to_string),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub(crate) fn at(self, file: &str, location: Location) -> RowError {
        RowError {
            file: file.to_string(),
            location,
            field: self.field,
            message: self.message,
            fix: self.fix,
        }
    }
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct RowError {
    pub file: String,
    pub location: Location,
    pub field: Option<String>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.file, self.location)?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the file is empty; there is nothing to import", path.display())]
    Empty { path: PathBuf },
    #[error("{}: no supported data files in this folder (looked for .jsonl, .json, .csv, .parquet)", path.display())]
    NoFiles { path: PathBuf },
    #[error(
        "{}: unknown file type; use .jsonl (one JSON object per line), .json (an array of objects), .csv or .parquet",
        path.display()
    )]
    UnknownFormat { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Unreadable {
        path: PathBuf,
        message: String,
        fix: String,
    },
    #[error(
        "{}: cannot tell what this file holds from its first row (fields: {fields}); expected `messages` (sequences), \
         `input`/`output` (rows), `options`/`probs` (distribution items), `rule` (diverse-valid tasks) or \
         `descriptions` (task definitions)",
        path.display()
    )]
    UnknownShape { path: PathBuf, fields: String },
    /// The rows' own errors (the first of them, each with its fix) are data:
    /// a front end lists them below the message.
    #[error("{first_file}: {rejected} invalid row(s); nothing was imported")]
    Invalid {
        first_file: String,
        rejected: usize,
        errors: Vec<RowError>,
    },
    #[error("the import was cancelled; nothing was imported")]
    Cancelled,
    #[error("could not store the imported rows")]
    Sink(#[source] SinkError),
}

impl Explain for ImportError {
    fn code(&self) -> ErrorCode {
        match self {
            ImportError::Cancelled => ErrorCode::Cancelled,
            ImportError::Sink(_) => ErrorCode::Internal,
            _ => ErrorCode::BadInput,
        }
    }

    fn fix(&self) -> Option<Fix> {
        match self {
            ImportError::Unreadable { fix, .. } => Some(Fix::say(fix.clone())),
            ImportError::UnknownShape { .. } => Some(Fix::setting(
                "as",
                "rename the columns, or name the shape the file holds",
            )),
            ImportError::Invalid { .. } => Some(Fix::setting(
                "skip_invalid",
                "import the valid rows and report the rest, or mend the rows listed",
            )),
            ImportError::UnknownFormat { .. } | ImportError::NoFiles { .. } => {
                Some(Fix::say("import .jsonl, .json, .csv or .parquet files"))
            }
            ImportError::Io { .. }
            | ImportError::Empty { .. }
            | ImportError::Cancelled
            | ImportError::Sink(_) => None,
        }
    }
}
