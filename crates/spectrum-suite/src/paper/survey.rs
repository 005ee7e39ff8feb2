//! A survey's respondents as a task's individuals, as the reference's
//! `icl_dataset_classes/wvs.py` makes them: each answered question becomes a
//! multiple-choice example (the question's variable label and its value
//! labels, reversed, as lettered options; the answer's letter), and the
//! respondent's demographics (variable label: value label, as Python's
//! `str(dict)`) describe them.
//!
//! Where the reference stops (a value without a label: `KeyError`, then
//! `breakpoint()`), the answer or demographic is left out instead, and a
//! respondent without answers has no examples.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::engine::RecipeError;
use super::recipe::{Recipe, Survey};
use super::sav::{Cell, Sav, Variable};

/// Columns of the examples a survey gives.
pub const RESPONDENT: &str = "respondent";
pub const DEMOGRAPHICS: &str = "demographics";
pub const QUESTION_AND_OPTIONS: &str = "question_and_options";
pub const RESPONSE_LETTER: &str = "response_letter";

/// The cases (0-based) of the respondents a task reads, in the reference's
/// order: pandas' `sample(frac=1, random_state=seed)` of all `cases`, then
/// the first `respondents`.
pub fn chosen(survey: &Survey, cases: usize) -> Vec<usize> {
    let mut order = super::py::numpy_permutation(survey.seed, cases);
    order.truncate(survey.respondents);
    order
}

/// The examples of a survey task whose SPSS file is at `path`: only the
/// chosen respondents' cases are kept as the file is read.
pub fn read(
    recipe: &Recipe,
    path: &std::path::Path,
) -> Result<Vec<Map<String, Value>>, RecipeError> {
    let survey = survey_of(recipe)?;
    let mut wanted: Option<std::collections::HashSet<usize>> = None;
    let sav = super::sav::read(path, &mut |case, cases| {
        wanted
            .get_or_insert_with(|| chosen(survey, cases).into_iter().collect())
            .contains(&case)
    })?;
    examples(recipe, &sav)
}

fn survey_of(recipe: &Recipe) -> Result<&Survey, RecipeError> {
    recipe.survey.as_ref().ok_or_else(|| RecipeError::Invalid {
        file: format!("{}.toml", recipe.task),
        message: "the recipe has no [survey]".into(),
    })
}

/// The examples of the chosen respondents of `sav` (read keeping at least
/// the cases [`chosen`] names), respondent by respondent in that order.
pub fn examples(recipe: &Recipe, sav: &Sav) -> Result<Vec<Map<String, Value>>, RecipeError> {
    let survey = survey_of(recipe)?;
    let column = |name: &str| {
        sav.column(name).ok_or_else(|| RecipeError::MissingColumn {
            task: recipe.task.clone(),
            column: name.to_string(),
            present: sav
                .variables
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    };
    let demographics = survey
        .demographics
        .iter()
        .map(|name| column(name))
        .collect::<Result<Vec<_>, _>>()?;
    for name in &recipe.source.columns {
        column(name)?;
    }
    let questions: Vec<(usize, Question)> = sav
        .variables
        .iter()
        .enumerate()
        .filter(|(_, v)| v.name.starts_with(&survey.question_prefix))
        .filter(|(_, v)| v.value_labels.len() <= survey.max_options)
        .filter(|(_, v)| !survey.skip.contains(&v.name))
        .map(|(i, v)| (i, Question::of(v)))
        .collect();
    let rows: HashMap<usize, &Vec<Cell>> = sav.rows.iter().map(|(i, r)| (*i, r)).collect();
    let mut out = Vec::new();
    for case in chosen(survey, sav.cases) {
        let Some(cells) = rows.get(&case) else {
            continue;
        };
        let described = describe(sav, &demographics, cells);
        for (i, question) in &questions {
            let Some(response) = sav.variables[*i].label_of(&cells[*i]) else {
                continue;
            };
            let Some(letter) = question.letter_of(response) else {
                continue;
            };
            let mut example = Map::new();
            example.insert(RESPONDENT.into(), Value::String(case.to_string()));
            example.insert(DEMOGRAPHICS.into(), Value::String(described.clone()));
            example.insert(
                QUESTION_AND_OPTIONS.into(),
                Value::String(question.text.clone()),
            );
            example.insert(RESPONSE_LETTER.into(), Value::String(letter.to_string()));
            out.push(example);
        }
    }
    Ok(out)
}

/// A question as its respondents see it.
struct Question {
    /// `{label}\nOptions:\n{letter}: {option}` for each option.
    text: String,
    /// Each distinct option's letter.
    letters: Vec<(String, char)>,
}

impl Question {
    /// Options are the value labels reversed; an option's letter is its
    /// position's (`{v: chr(65 + i) for i, v in enumerate(options)}`: an
    /// option that repeats keeps its first place and its last letter).
    fn of(variable: &Variable) -> Question {
        let options = variable.value_labels.iter().rev().map(|(_, l)| l.clone());
        let mut letters: Vec<(String, char)> = Vec::new();
        for (i, option) in options.enumerate() {
            let letter = char::from_u32(65 + i as u32).unwrap_or('?');
            match letters.iter_mut().find(|(o, _)| *o == option) {
                Some(entry) => entry.1 = letter,
                None => letters.push((option, letter)),
            }
        }
        let options: Vec<String> = letters
            .iter()
            .map(|(option, letter)| format!("{letter}: {option}"))
            .collect();
        let label = variable.label.as_deref().unwrap_or("None");
        Question {
            text: format!("{label}\nOptions:\n{}", options.join("\n")),
            letters,
        }
    }

    fn letter_of(&self, response: &str) -> Option<char> {
        self.letters
            .iter()
            .find(|(o, _)| o == response)
            .map(|(_, l)| *l)
    }
}

/// `str(demographics)`: `{variable label: value label}` of each demographic
/// the respondent has a labelled value for, in the recipe's order.
fn describe(sav: &Sav, demographics: &[usize], cells: &[Cell]) -> String {
    let mut items: Vec<(String, String)> = Vec::new();
    for &i in demographics {
        let variable = &sav.variables[i];
        let Some(value) = variable.label_of(&cells[i]) else {
            continue;
        };
        let key = match &variable.label {
            Some(label) => super::py::repr(&Value::String(label.clone())),
            None => "None".into(),
        };
        let value = super::py::repr(&Value::String(value.to_string()));
        match items.iter_mut().find(|(k, _)| *k == key) {
            Some(item) => item.1 = value,
            None => items.push((key, value)),
        }
    }
    let inner: Vec<String> = items.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paper::sav::Missing;

    fn variable(name: &str, label: &str, labels: &[(f64, &str)]) -> Variable {
        Variable {
            name: name.into(),
            label: Some(label.into()),
            width: 0,
            value_labels: labels
                .iter()
                .map(|(v, l)| (Cell::Number(*v), l.to_string()))
                .collect(),
            missing: Missing::None,
        }
    }

    #[test]
    fn options_are_the_labels_reversed_and_a_repeated_option_keeps_its_last_letter() {
        let q = Question::of(&variable(
            "Q1",
            "Trust",
            &[(1.0, "Yes"), (2.0, "No"), (3.0, "Yes")],
        ));
        // options [Yes, No, Yes]: {Yes: C, No: B}, written in first-seen order.
        assert_eq!(q.text, "Trust\nOptions:\nC: Yes\nB: No");
        assert_eq!(q.letter_of("Yes"), Some('C'));
        assert_eq!(q.letter_of("Maybe"), None);
    }

    #[test]
    fn demographics_read_as_pythons_dict() {
        let sav = Sav {
            variables: vec![
                variable("B_COUNTRY", "Country", &[(384.0, "Côte d'Ivoire")]),
                variable("N_TOWN", "Town", &[(1.0, "Big")]),
                variable("X", "Country", &[(1.0, "Again")]),
            ],
            cases: 1,
            rows: Vec::new(),
        };
        let cells = [Cell::Number(384.0), Cell::Missing, Cell::Number(1.0)];
        assert_eq!(
            describe(&sav, &[0, 1], &cells),
            "{'Country': \"Côte d'Ivoire\"}"
        );
        // A repeated key keeps its place and takes the later value.
        assert_eq!(describe(&sav, &[0, 2], &cells), "{'Country': 'Again'}");
    }
}
