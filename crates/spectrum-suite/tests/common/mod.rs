//! What the fidelity tests read from the reference's recordings.

/// One prompt of a distributional task and its target.
#[derive(Debug, PartialEq, PartialOrd, serde::Deserialize)]
pub struct Item {
    pub description: String,
    pub input: String,
    pub options: Vec<String>,
    pub probs: Vec<f64>,
}
