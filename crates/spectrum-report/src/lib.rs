//! The pictures of a result and the document a researcher sends on: charts
//! with plotters (SVG and PNG, [`charts`]) and the PDF report with krilla
//! ([`pdf`]). Inputs are plain values, so everything here can be drawn from
//! fixed data; `spectrum-app` turns stored runs into them.

pub mod charts;
mod fonts;
pub mod pdf;

pub use charts::{Chart, Figure, ItemBars, Panel, Series};
pub use pdf::{Block, DocumentSpec, Section};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("chart: {0}")]
    Chart(String),
    #[error("PDF: {0}")]
    Pdf(String),
    #[error("cannot write {}: {message}", path.display())]
    Io {
        path: std::path::PathBuf,
        message: String,
    },
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;
