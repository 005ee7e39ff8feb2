//! The SPSS reader against pyreadstat: one WVS-shaped table written three
//! ways by pyreadstat (uncompressed, bytecode-compressed as SPSS writes, and
//! zlib-compressed `.zsav`) reads here as `pyreadstat.read_sav` read it
//! (tests/fixtures/sav/pyreadstat.json, recorded by
//! scripts/record_paper_tasks.py): the same variables, labels, value labels
//! in the file's order, user-missing declarations and cells. And numpy's
//! legacy permutation, which picks the survey's respondents.

use std::path::{Path, PathBuf};

use serde_json::Value;
use spectrum_suite::paper::{
    py,
    sav::{self, Cell, Missing},
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cell_json(cell: &Cell) -> Value {
    match cell {
        Cell::Number(x) => serde_json::json!(x),
        Cell::Text(t) => Value::String(t.clone()),
        Cell::Missing => Value::Null,
    }
}

/// pyreadstat's `missing_ranges` entries of a declaration.
fn ranges(missing: &Missing) -> Vec<(f64, f64)> {
    let number = |c: &Cell| match c {
        Cell::Number(x) => *x,
        other => panic!("a text missing value {other:?}"),
    };
    match missing {
        Missing::None => Vec::new(),
        Missing::Values(values) => values.iter().map(|v| (number(v), number(v))).collect(),
        Missing::Range { low, high, also } => {
            let mut out = vec![(*low, *high)];
            out.extend(also.map(|x| (x, x)));
            out
        }
    }
}

#[test]
fn every_encoding_of_the_table_reads_as_pyreadstat_reads_it() {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join("sav/pyreadstat.json")).expect("recording");
    let want: Value = serde_json::from_str(&text).expect("JSON");
    for file in [
        dir.join("sav/plain.sav"),
        dir.join("paper/wvs_individual.sav"),
        dir.join("sav/compressed.zsav"),
    ] {
        let at = file.display().to_string();
        let sav = sav::read(&file, &mut |_, _| true).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = sav.variables.iter().map(|v| v.name.as_str()).collect();
        let want_names: Vec<&str> = want["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c.as_str().expect("name"))
            .collect();
        assert_eq!(names, want_names, "{at}: variables");
        for v in &sav.variables {
            assert_eq!(
                v.label.as_deref(),
                want["labels"][&v.name].as_str(),
                "{at}: label of {}",
                v.name
            );
            let labels: Vec<Value> = v
                .value_labels
                .iter()
                .map(|(value, label)| serde_json::json!([cell_json(value), label]))
                .collect();
            let want_labels = want["value_labels"]
                .get(&v.name)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            assert_eq!(labels, want_labels, "{at}: value labels of {}", v.name);
            let want_ranges: Vec<(f64, f64)> = want["missing_ranges"]
                .get(&v.name)
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .map(|e| {
                            let f = |k: &str| e[k].as_f64().expect("a number");
                            (f("lo"), f("hi"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(
                ranges(&v.missing),
                want_ranges,
                "{at}: missing of {}",
                v.name
            );
        }
        let want_rows = want["rows"].as_array().expect("rows");
        assert_eq!(sav.cases, want_rows.len(), "{at}: cases");
        for ((case, cells), want_row) in sav.rows.iter().zip(want_rows) {
            let row: Vec<Value> = cells.iter().map(cell_json).collect();
            assert_eq!(&Value::Array(row), want_row, "{at}: case {case}");
        }
    }
}

#[test]
fn only_the_kept_cases_are_returned_and_the_count_is_the_files() {
    let path = fixtures().join("paper/wvs_individual.sav");
    let mut asked = Vec::new();
    let sav = sav::read(&path, &mut |case, cases| {
        asked.push((case, cases));
        case % 5 == 0
    })
    .expect("reads");
    assert_eq!(sav.cases, 12);
    assert_eq!(asked, (0..12).map(|c| (c, 12)).collect::<Vec<_>>());
    let kept: Vec<usize> = sav.rows.iter().map(|(c, _)| *c).collect();
    assert_eq!(kept, [0, 5, 10]);
    assert!(sav.rows.iter().all(|(_, r)| r.len() == sav.variables.len()));
}

#[test]
fn a_file_that_is_not_a_system_file_or_is_cut_short_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = std::fs::read(fixtures().join("paper/wvs_individual.sav")).expect("fixture");
    let cases = [
        (
            "text.sav",
            b"name,age\nx,1\n".to_vec(),
            "does not start with $FL2",
        ),
        (
            "header.sav",
            whole[..300].to_vec(),
            "ends inside its dictionary",
        ),
        (
            "data.sav",
            whole[..whole.len() - 20].to_vec(),
            "the data ends",
        ),
    ];
    for (name, bytes, says) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let e = sav::read(&path, &mut |_, _| true).expect_err("refused");
        let message = e.to_string();
        assert!(
            message.contains(name) && message.contains(says),
            "{name}: {message}"
        );
    }
}

#[test]
fn numpy_permutation_is_numpys() {
    let path = fixtures().join("paper/numpy_permutation.json");
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("recording")).expect("JSON");
    for case in recorded["cases"].as_array().expect("cases") {
        let seed = case["seed"].as_u64().expect("seed") as u32;
        let n = case["n"].as_u64().expect("n") as usize;
        let want: Vec<usize> = case["permutation"]
            .as_array()
            .expect("permutation")
            .iter()
            .map(|x| x.as_u64().expect("index") as usize)
            .collect();
        let ours = py::numpy_permutation(seed, n);
        assert_eq!(ours.len(), n);
        assert_eq!(&ours[..want.len()], &want[..], "seed {seed}, n {n}");
    }
}
