//! The paper's 22 diverse-valid tasks, read from their recipes.
//!
//! Each task is one TOML file in `recipes/diverse_valid/`, shipped inside the
//! binary: the fields of a [`ValidityTask`] (task, description, examples,
//! max_new_tokens and a `[rule]` table), equal to the reference's task of that
//! name (tsor13/spectrum @ 5a33588, `src/spectrum/diverse_valid/tasks/`); the
//! reference's registry evaluates every task factory found there, 22 in all.
//! `tests/paper_valid.rs` checks the recipes against the reference's own
//! verdicts. Seven rules name one of six word lists the reference downloads
//! when first used ([`ValidityRule::WordList`]: colors, verbs, the periodic
//! table, car models); those compile only with the list supplied
//! ([`ValidityRule::compile_with`]).

use crate::model::ValidityTask;
use crate::validity::{RuleError, ValidityRule};

macro_rules! recipe {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../recipes/diverse_valid/", $file)),
        )
    };
}

/// Every recipe: its file name and text.
const RECIPES: &[(&str, &str)] = &[
    recipe!("basic_emails.toml"),
    recipe!("car_brand.toml"),
    recipe!("car_make_model.toml"),
    recipe!("claude_gerunds.toml"),
    recipe!("color_interesting_ex.toml"),
    recipe!("color_normal_ex.toml"),
    recipe!("element_names.toml"),
    recipe!("element_symbols.toml"),
    recipe!("international_phone_numbers.toml"),
    recipe!("prime_numbers.toml"),
    recipe!("professional_emails.toml"),
    recipe!("random_seed.toml"),
    recipe!("rng_1_10.toml"),
    recipe!("rng_1_100.toml"),
    recipe!("small_prime_numbers.toml"),
    recipe!("us_phone_numbers.toml"),
    recipe!("us_states_abbreviations.toml"),
    recipe!("us_states_any_format.toml"),
    recipe!("us_states_full_names.toml"),
    recipe!("weekdays_abbreviated.toml"),
    recipe!("weekdays_any_format.toml"),
    recipe!("weekdays_full.toml"),
];

/// A recipe that does not make a task: names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("recipes/diverse_valid/{file}: {source}")]
    Parse {
        file: &'static str,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("recipes/diverse_valid/{file}: the task is named {task:?}: name it after its file")]
    Name { file: &'static str, task: String },
    #[error("recipes/diverse_valid/{file}: its rule does not compile: {source}")]
    Rule {
        file: &'static str,
        #[source]
        source: RuleError,
    },
}

/// The 22 tasks, sorted by name, each rule checked by compiling it (a
/// word-list rule as far as it can be without its list).
pub fn tasks() -> Result<Vec<ValidityTask>, RecipeError> {
    let mut tasks = RECIPES
        .iter()
        .map(|&(file, text)| read(file, text))
        .collect::<Result<Vec<_>, _>>()?;
    tasks.sort_by(|a, b| a.task.cmp(&b.task));
    Ok(tasks)
}

fn read(file: &'static str, text: &str) -> Result<ValidityTask, RecipeError> {
    let task: ValidityTask = toml::from_str(text).map_err(|e| RecipeError::Parse {
        file,
        source: Box::new(e),
    })?;
    if file.strip_suffix(".toml") != Some(task.task.as_str()) {
        return Err(RecipeError::Name {
            file,
            task: task.task,
        });
    }
    check_rule(&task.rule).map_err(|source| RecipeError::Rule { file, source })?;
    Ok(task)
}

/// Compiles `rule`. A missing word list is the one error allowed, its list
/// not being shipped; the rest of an `all_of` that names one is still checked.
fn check_rule(rule: &ValidityRule) -> Result<(), RuleError> {
    match (rule.compile(), rule) {
        (Ok(_), _) => Ok(()),
        (Err(RuleError::MissingList { .. }), ValidityRule::AllOf { rules }) => {
            rules.iter().try_for_each(check_rule)
        }
        (Err(RuleError::MissingList { .. }), _) => Ok(()),
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Examples the reference's own validator rejects (see the fixture,
    /// tests/fixtures/diverse_valid_reference.json).
    const INVALID_EXAMPLES: &[(&str, &str)] = &[("us_phone_numbers", "646 562-1938")];

    #[test]
    fn twenty_two_tasks_with_unique_names_sorted() {
        let tasks = tasks().expect("recipes read");
        assert_eq!(tasks.len(), 22);
        let names: Vec<&str> = tasks.iter().map(|t| t.task.as_str()).collect();
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), 22, "{names:?}");
        assert!(names.is_sorted(), "{names:?}");
        for t in &tasks {
            assert_eq!(t.examples.len(), 3, "{}", t.task);
            assert!(!t.description.is_empty(), "{}", t.task);
            assert!(t.max_new_tokens.is_some(), "{}", t.task);
        }
    }

    #[test]
    fn every_example_is_valid_under_its_own_rule() {
        for t in tasks().expect("recipes read") {
            if !t.rule.word_lists().is_empty() {
                continue; // no list, no verdict: checked against probe lists in tests/paper_valid.rs
            }
            let validator = t.rule.compile().expect("rule compiles");
            for e in &t.examples {
                let known_invalid = INVALID_EXAMPLES.contains(&(t.task.as_str(), e.as_str()));
                assert_eq!(validator.is_valid(e), !known_invalid, "{}: {e:?}", t.task);
            }
        }
    }

    #[test]
    fn rules_compile_and_word_lists_are_the_six_downloaded_ones() {
        let mut lists = Vec::new();
        for t in tasks().expect("recipes read") {
            match t.rule.compile() {
                Ok(_) => assert!(t.rule.word_lists().is_empty(), "{}", t.task),
                Err(RuleError::MissingList { list, origin }) => {
                    assert!(origin.contains("https://"), "{}: {origin}", t.task);
                    lists.push((t.task, list));
                }
                Err(e) => panic!("{}: {e}", t.task),
            }
        }
        let names: HashSet<&str> = lists.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lists.len(), 7, "{lists:?}");
        assert_eq!(names.len(), 6, "{lists:?}");
    }

    #[test]
    fn a_bad_recipe_names_its_file_and_line() {
        let err = read(
            "weekdays_full.toml",
            "task = \"weekdays_full\"\ndescription = 3\n",
        )
        .expect_err("a number is no description");
        let msg = err.to_string();
        assert!(
            msg.starts_with("recipes/diverse_valid/weekdays_full.toml: "),
            "{msg}"
        );
        assert!(msg.contains("line 2"), "{msg}");

        let err = read(
            "rng_1_10.toml",
            "task = \"rng\"\ndescription = \"d\"\nexamples = []\n[rule]\ntype = \"email\"\n",
        )
        .expect_err("named after another file");
        assert!(matches!(err, RecipeError::Name { .. }), "{err}");

        let bad_rule = "task = \"t\"\ndescription = \"d\"\nexamples = []\n[rule]\ntype = \"regex\"\npattern = \"(\"\n";
        let err = read("t.toml", bad_rule).expect_err("the pattern does not compile");
        assert!(
            err.to_string()
                .starts_with("recipes/diverse_valid/t.toml: its rule does not compile"),
            "{err}"
        );
    }
}
