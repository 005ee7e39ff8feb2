//! The end-to-end fixture: a tiny random Llama model (built in code, same
//! bytes every time), steerability sequences and distribution items. The
//! evaluation renders them with our templates; `scripts/check_eval.py` scores
//! the same token ids with Hugging Face transformers and records the values
//! the test compares against.

use std::path::Path;

use serde_json::json;
use spectrum_eval::steer::EvalSequence;
use spectrum_suite::{DistributionItem, Message, Role};

/// Writes the model into `dir`.
pub fn model(dir: &Path) {
    spectrum_lm::tiny::write_model(dir, 64, 2, 11).expect("tiny model");
}

pub fn sequences() -> Vec<EvalSequence> {
    let m = Message::new;
    vec![
        EvalSequence {
            id: "coin".into(),
            messages: vec![
                m(
                    Role::Description,
                    "Flip a coin that lands heads 70% of the time.",
                ),
                m(Role::Output, "heads"),
                m(Role::Output, "tails"),
                m(Role::Output, "heads"),
            ],
        },
        EvalSequence {
            id: "sum".into(),
            messages: vec![
                m(Role::Input, "2 + 3"),
                m(Role::Output, "5"),
                m(Role::Input, "10 + 7"),
                m(Role::Output, "17"),
                m(Role::Input, "1 + 1"),
                m(Role::Output, "2"),
            ],
        },
        EvalSequence {
            id: "colour".into(),
            messages: vec![
                m(Role::Output, "red"),
                m(Role::Output, "green"),
                m(Role::Output, "blue"),
                m(Role::Output, "red"),
            ],
        },
    ]
}

pub fn items() -> Vec<DistributionItem> {
    let item =
        |id: &str, description: &str, input: &str, options: &[&str], probs: &[f64], ordinal| {
            let mut metadata = serde_json::Map::new();
            metadata.insert("id".into(), json!(id));
            DistributionItem {
                task: "fixture".into(),
                description: description.into(),
                input: input.into(),
                options: options.iter().map(|o| o.to_string()).collect(),
                probs: probs.to_vec(),
                ordinal,
                metadata,
            }
        };
    vec![
        item(
            "urn",
            "An urn holds 3 red balls and 1 blue ball. Draw one.",
            "",
            &["red", "blue"],
            &[0.75, 0.25],
            false,
        ),
        item(
            "likert",
            "How much do people agree?",
            "Cats are better than dogs.",
            &[
                "strongly disagree",
                "disagree",
                "neutral",
                "agree",
                "strongly agree",
            ],
            &[0.1, 0.2, 0.4, 0.2, 0.1],
            true,
        ),
        item(
            "count",
            "Count the heads in two fair coin flips.",
            "",
            &["0", "1", "2"],
            &[0.25, 0.5, 0.25],
            true,
        ),
    ]
}
