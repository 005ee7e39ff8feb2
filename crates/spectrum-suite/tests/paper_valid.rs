//! The paper's diverse-valid recipes against the reference's own validators.
//!
//! `tests/fixtures/diverse_valid_reference.json` was written by
//! `scripts/record_diverse_valid.py`, which runs the reference's task factories
//! (tsor13/spectrum @ 5a33588, found by its own registry) and records each
//! task's description, examples, max_new_tokens, the valid strings of a closed
//! set, and the verdict of its evaluation (`format_with_stop_strings`, then
//! `task.validate`) on probe strings. Tasks whose list the reference downloads
//! were run on probe lists the fixture carries.

use std::collections::BTreeSet;

use serde::Deserialize;
use spectrum_suite::ValidityTask;
use spectrum_suite::paper::valid;
use spectrum_suite::validity::{ValidityRule, WordLists};

#[derive(Deserialize)]
struct Fixture {
    reference: String,
    tasks: Vec<ReferenceTask>,
}

#[derive(Deserialize)]
struct ReferenceTask {
    task: String,
    description: String,
    examples: Vec<String>,
    max_new_tokens: usize,
    valid_strings: Option<Vec<String>>,
    word_list: Option<ProbeList>,
    verdicts: Vec<(String, bool)>,
}

#[derive(Deserialize)]
struct ProbeList {
    name: String,
    rows: Vec<Vec<String>>,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/diverse_valid_reference.json");
    let fixture: Fixture = serde_json::from_str(text).expect("fixture parses");
    assert!(
        fixture.reference.contains("5a33588"),
        "{}",
        fixture.reference
    );
    fixture
}

/// Our recipe of each fixture task, in the fixture's order.
fn pairs(fixture: &Fixture) -> Vec<(&ReferenceTask, ValidityTask)> {
    let ours = valid::tasks().expect("recipes read");
    fixture
        .tasks
        .iter()
        .map(|r| {
            let task = ours.iter().find(|t| t.task == r.task);
            (
                r,
                task.unwrap_or_else(|| panic!("no recipe for {}", r.task))
                    .clone(),
            )
        })
        .collect()
}

/// A sample as the evaluation cleans it before the check
/// (`spectrum_eval::valid::cut`): no probe holds a stop string or a pad token,
/// so that is a trim.
fn cleaned(text: &str) -> &str {
    let stops = [
        "\n",
        "<|eot_id|>",
        "<end_of_turn>",
        "<|im_end|>",
        "<|end_of_text|>",
    ];
    let trimmed = text.trim();
    for s in stops.iter().chain(&["<pad>", "<|endoftext|>"]) {
        assert!(!trimmed.contains(s), "probe {text:?} holds {s:?}");
    }
    trimmed
}

#[test]
fn our_task_set_is_the_references() {
    let fixture = fixture();
    let theirs: BTreeSet<&str> = fixture.tasks.iter().map(|t| t.task.as_str()).collect();
    let ours = valid::tasks().expect("recipes read");
    let ours: BTreeSet<&str> = ours.iter().map(|t| t.task.as_str()).collect();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 22);
}

#[test]
fn descriptions_examples_and_token_limits_are_the_references() {
    let fixture = fixture();
    for (r, t) in pairs(&fixture) {
        assert_eq!(t.description, r.description, "{}", r.task);
        assert_eq!(t.examples, r.examples, "{}", r.task);
        assert_eq!(t.max_new_tokens, Some(r.max_new_tokens), "{}", r.task);
    }
}

#[test]
fn closed_sets_are_the_references_valid_strings() {
    let fixture = fixture();
    let mut closed = 0;
    for (r, t) in pairs(&fixture) {
        match (&r.valid_strings, &t.rule) {
            (
                Some(valid),
                ValidityRule::ClosedSet {
                    values,
                    case_sensitive,
                },
            ) => {
                assert_eq!(values, valid, "{}", r.task);
                assert!(case_sensitive, "{}: InclusionTask compares exactly", r.task);
                closed += 1;
            }
            (None, ValidityRule::ClosedSet { .. }) => panic!("{}: not a closed set", r.task),
            (Some(_), rule) => panic!("{}: a closed set, not {}", r.task, rule.name()),
            (None, _) => {}
        }
    }
    assert_eq!(closed, 7);
}

#[test]
fn every_verdict_is_the_references() {
    let fixture = fixture();
    let mut wrong = Vec::new();
    let mut probes = 0;
    for (r, t) in pairs(&fixture) {
        let mut lists = WordLists::new();
        if let Some(list) = &r.word_list {
            lists.insert(list.name.clone(), list.rows.clone());
        }
        assert_eq!(
            t.rule.word_lists(),
            r.word_list
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
            "{}: the list its rule names",
            r.task
        );
        let validator = t
            .rule
            .compile_with(&lists)
            .unwrap_or_else(|e| panic!("{}: {e}", r.task));
        for (text, reference) in &r.verdicts {
            probes += 1;
            if validator.is_valid(cleaned(text)) != *reference {
                wrong.push(format!("{}: {text:?} should be {reference}", r.task));
            }
        }
    }
    assert!(probes > 22 * 40, "{probes} probes");
    assert!(
        wrong.is_empty(),
        "{} of {probes} verdicts differ from the reference's:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
