//! Importer tests: one per format and shape, one per validation error. Each
//! writes a small file, imports it into a `Vec`, and checks what a user sees.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use spectrum_core::{Explain, Fix};
use spectrum_suite::import::{
    self, ImportError, ImportOptions, ImportReport, Item, Location, Shape,
};
use spectrum_suite::{Role, Split, TaskKind, ValidityRule};

struct Imported {
    items: Vec<Item>,
    report: ImportReport,
}

fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write fixture");
    path
}

fn import_with(
    name: &str,
    content: &[u8],
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, name, content);
    import_paths(&[path], options)
}

fn import_paths(paths: &[PathBuf], options: &ImportOptions) -> Result<Imported, ImportError> {
    let files = import::files_to_import(paths)?;
    let mut items = Vec::new();
    let report = import::import(
        &files,
        options,
        &mut items,
        &mut |_| {},
        &AtomicBool::new(false),
    )?;
    Ok(Imported { items, report })
}

fn import_ok(name: &str, content: &str) -> Imported {
    import_with(name, content.as_bytes(), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("import failed: {e}"))
}

/// Imports `content`, expects it to be rejected, and checks that the message of
/// the one bad row contains every fragment (location, field, problem, fix).
fn check_rejected(name: &str, content: &[u8], fragments: &[&str]) {
    let err = match import_with(name, content, &ImportOptions::default()) {
        Ok(_) => panic!("{name}: expected the import to fail"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("nothing was imported"), "{err}");
    // The message is the summary; each row, with its fix, is data.
    let ImportError::Invalid { errors, .. } = &err else {
        panic!("{name}: expected invalid rows, got {err}")
    };
    assert!(errors.iter().all(|e| !e.fix.is_empty()), "{errors:?}");
    let text = errors
        .iter()
        .map(|e| format!("{e} / {}", e.fix))
        .collect::<Vec<_>>()
        .join("\n");
    for f in fragments {
        assert!(text.contains(f), "expected {f:?} in:\n{text}");
    }
}

fn sequences(items: &[Item]) -> Vec<&spectrum_suite::Sequence> {
    items
        .iter()
        .filter_map(|i| {
            if let Item::Sequence(s) = i {
                Some(s)
            } else {
                None
            }
        })
        .collect()
}

const COIN: &str = r#"{"task": "coinflip", "id": 7, "seed": 3, "messages": [{"role": "description", "content": "Flip a coin that lands heads 70% of the time."}, {"role": "output", "content": "heads"}, {"role": "output", "content": "tails"}]}"#;

#[test]
fn jsonl_messages_keep_extra_fields_as_metadata() {
    let got = import_ok("coin.jsonl", &format!("{COIN}\n\n{COIN}\n"));
    let file = &got.report.files[0];
    assert_eq!(
        (file.shape, file.detected, file.rows, file.imported),
        (Shape::Messages, true, 2, 2)
    );
    // A task the file does not define is created once, with the import's defaults.
    let Item::Task(def) = &got.items[0] else {
        panic!("first item should define the task")
    };
    assert_eq!(
        (def.task.as_str(), def.split, def.kind),
        ("coinflip", Split::Train, TaskKind::Sequence)
    );
    let seqs = sequences(&got.items);
    assert_eq!(seqs.len(), 2);
    assert_eq!(seqs[0].messages.len(), 3);
    assert_eq!(seqs[0].messages[0].role, Role::Description);
    assert_eq!(seqs[0].metadata["id"], 7);
    assert_eq!(seqs[0].metadata["seed"], 3);
    assert_eq!(got.report.counts.sequences, 2);
    assert_eq!(got.report.counts.tasks, 1);
}

#[test]
fn json_array_is_streamed_element_by_element() {
    let content = format!("[\n  {COIN},\n  {COIN}\n]\n");
    let got = import_ok("coin.json", &content);
    assert_eq!(sequences(&got.items).len(), 2);
    // A bad element is reported with its index and line; the others are still checked.
    let bad = format!(
        "[\n  {COIN},\n  {{\"task\": \"x\", \"messages\": [{{\"role\": \"assistant\", \"content\": \"hi\"}}]}}\n]"
    );
    check_rejected(
        "coin.json",
        bad.as_bytes(),
        &[
            "coin.json: element 2 (line 3)",
            "messages[0].role",
            "\"assistant\"",
            "assistant -> output",
        ],
    );
}

#[test]
fn json_object_per_line_with_json_extension_is_read_as_jsonl() {
    let got = import_ok("coin.json", &format!("{COIN}\n{COIN}\n"));
    assert_eq!(sequences(&got.items).len(), 2);
}

#[test]
fn csv_rows_with_a_task_column() {
    let csv = "task,description,input,output,source\nadd,Add the numbers,\"1, 2\",3,web\nadd,,\"2, 2\",4,web\nshout,,hi,HI,\n";
    let got = import_ok("pairs.csv", csv);
    assert_eq!(got.report.files[0].shape, Shape::Rows);
    let seqs = sequences(&got.items);
    assert_eq!(seqs.len(), 3);
    assert_eq!(
        seqs[0].messages.iter().map(|m| m.role).collect::<Vec<_>>(),
        [Role::Description, Role::Input, Role::Output]
    );
    assert_eq!(seqs[0].messages[1].content, "1, 2");
    assert_eq!(
        seqs[1].messages.len(),
        2,
        "an empty description cell means no description"
    );
    assert_eq!(seqs[0].metadata["source"], "web");
    assert_eq!(got.report.counts.tasks, 2);
}

#[test]
fn tsv_and_prompt_completion_columns() {
    let got = import_ok("pc.tsv", "prompt\tcompletion\nHello\tWorld\n");
    let seqs = sequences(&got.items);
    assert_eq!(
        seqs[0].task, "pc",
        "rows without a task column belong to a task named after the file"
    );
    assert_eq!(seqs[0].messages[1].content, "World");
}

#[test]
fn csv_missing_columns_is_a_file_error() {
    let err = import_with(
        "urn.csv",
        b"description,options\nAn urn,\"[\"\"red\"\"]\"\n",
        &ImportOptions {
            shape: Some(Shape::Distribution),
            ..Default::default()
        },
    )
    .err()
    .expect("must fail");
    let text = err.to_string();
    assert!(
        text.contains("urn.csv: line 1 (header): missing column(s) `probs`"),
        "{text}"
    );
    let Some(Fix::Say { text: fix }) = err.fix() else {
        panic!("no fix for {text}")
    };
    assert!(fix.contains("add the missing columns"), "{fix}");
}

#[test]
fn distribution_items_in_both_namings() {
    let ours = r#"{"task": "urn", "description": "3 red, 1 blue", "input": "Draw one.", "options": ["red", "blue"], "probs": [0.75, 0.25], "ordinal": false}"#;
    let reference = r#"{"description_text": "Rate it", "input_text": "", "target_outputs": ["1", "2", "3"], "target_probs": [0.2, 0.3, 0.5], "ordinal": true, "name": "likert"}"#;
    let got = import_ok("urn.jsonl", ours);
    let Item::Distribution(d) = &got.items[1] else {
        panic!("{:?}", got.items)
    };
    assert_eq!(
        (d.options.len(), d.probs[0], d.input.as_str()),
        (2, 0.75, "Draw one.")
    );
    let got = import_ok("ref.jsonl", reference);
    let Item::Distribution(d) = &got.items[1] else {
        panic!("{:?}", got.items)
    };
    assert_eq!(d.task, "ref");
    assert!(d.ordinal);
    assert_eq!(d.metadata["name"], "likert");
    let Item::Task(def) = &got.items[0] else {
        panic!()
    };
    assert_eq!(def.kind, TaskKind::Distribution);
}

#[test]
fn distribution_from_csv_with_json_list_cells() {
    let csv =
        "task,description,options,probs\nurn,An urn,\"[\"\"red\"\",\"\"blue\"\"]\",\"[0.5,0.5]\"\n";
    let got = import_ok("urn.csv", csv);
    let Item::Distribution(d) = &got.items[1] else {
        panic!()
    };
    assert_eq!(d.options, ["red", "blue"]);
}

#[test]
fn diverse_valid_definitions() {
    let line = r#"{"task": "weekday", "description": "Name a day.", "examples": ["Monday", "Friday", "Sunday"], "rule": {"type": "closed_set", "values": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]}}"#;
    let got = import_ok("dv.jsonl", line);
    assert_eq!(got.report.files[0].shape, Shape::DiverseValid);
    let Item::Validity(v) = &got.items[1] else {
        panic!()
    };
    assert_eq!(v.rule.valid_set_size(), Some(7));
    assert_eq!(v.max_new_tokens, None);
    let Item::Task(def) = &got.items[0] else {
        panic!()
    };
    assert_eq!(def.descriptions, ["Name a day."]);
    // A sample length per task, as the reference's tasks carry one.
    let line = r#"{"task": "digit", "description": "A digit.", "examples": ["1", "7"], "rule": {"type": "integer_range", "min": 0, "max": 9}, "max_new_tokens": 4}"#;
    let got = import_ok("dv.jsonl", line);
    let Item::Validity(v) = &got.items[1] else {
        panic!()
    };
    assert_eq!(v.max_new_tokens, Some(4));
}

#[test]
fn task_definitions_set_split_and_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(&dir, "tasks.jsonl", br#"{"task": "coinflip", "category": "numbers", "split": "held_out", "kind": "sequence", "descriptions": ["Flip.", "Toss."]}"#);
    write(&dir, "a.jsonl", COIN.as_bytes());
    let got = import_paths(&[dir.path().to_path_buf()], &ImportOptions::default()).expect("import");
    let Item::Task(def) = &got.items[0] else {
        panic!()
    };
    assert_eq!((def.split, def.descriptions.len()), (Split::HeldOut, 2));
    // The sequence file does not redefine the task with defaults.
    assert_eq!(
        got.items
            .iter()
            .filter(|i| matches!(i, Item::Task(_)))
            .count(),
        1
    );
    assert_eq!(got.report.files.len(), 2);
}

#[test]
fn parquet_rows_and_lists() {
    use std::sync::Arc;

    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema = Arc::new(
        parse_message_type(
            "message item {
                REQUIRED BYTE_ARRAY task (UTF8);
                REQUIRED BYTE_ARRAY description (UTF8);
                REQUIRED GROUP options (LIST) { REPEATED GROUP list { REQUIRED BYTE_ARRAY element (UTF8); } }
                REQUIRED GROUP probs (LIST) { REPEATED GROUP list { REQUIRED DOUBLE element; } }
            }",
        )
        .expect("schema"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("urns.parquet");
    let file = std::fs::File::create(&path).expect("create");
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    let strings = |v: &[&str]| v.iter().map(|s| ByteArray::from(*s)).collect::<Vec<_>>();
    // Two rows: ["red","blue"] / [0.75,0.25] and ["a","b","c"] / [0.2,0.3,0.5].
    let mut col = group.next_column().expect("col").expect("task");
    col.typed::<ByteArrayType>()
        .write_batch(&strings(&["urn", "urn"]), None, None)
        .expect("write");
    col.close().expect("close");
    let mut col = group.next_column().expect("col").expect("description");
    col.typed::<ByteArrayType>()
        .write_batch(&strings(&["3 red 1 blue", "abc"]), None, None)
        .expect("write");
    col.close().expect("close");
    let mut col = group.next_column().expect("col").expect("options");
    col.typed::<ByteArrayType>()
        .write_batch(
            &strings(&["red", "blue", "a", "b", "c"]),
            Some(&[1, 1, 1, 1, 1]),
            Some(&[0, 1, 0, 1, 1]),
        )
        .expect("write");
    col.close().expect("close");
    let mut col = group.next_column().expect("col").expect("probs");
    col.typed::<DoubleType>()
        .write_batch(
            &[0.75, 0.25, 0.2, 0.3, 0.5],
            Some(&[1, 1, 1, 1, 1]),
            Some(&[0, 1, 0, 1, 1]),
        )
        .expect("write");
    col.close().expect("close");
    group.close().expect("close group");
    writer.close().expect("close file");

    let got = import_paths(&[path], &ImportOptions::default()).expect("import");
    assert_eq!(got.report.files[0].shape, Shape::Distribution);
    let items: Vec<_> = got
        .items
        .iter()
        .filter_map(|i| {
            if let Item::Distribution(d) = i {
                Some(d)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].options, ["a", "b", "c"]);
    assert_eq!(items[1].probs, [0.2, 0.3, 0.5]);

    // A truncated Parquet file is a clear file error.
    let bytes = std::fs::read(dir.path().join("urns.parquet")).expect("read");
    let err = import_with(
        "broken.parquet",
        &bytes[..bytes.len() / 2],
        &ImportOptions::default(),
    )
    .err()
    .expect("must fail");
    assert!(
        err.to_string().contains("not a readable Parquet file"),
        "{err}"
    );
}

// --- one test per validation error -------------------------------------------

#[test]
fn invalid_json() {
    check_rejected(
        "bad.jsonl",
        format!("{COIN}\n{{\"task\": \"x\", \"messages\": [}}\n").as_bytes(),
        &[
            "bad.jsonl: line 2",
            "invalid JSON at column",
            "correct the JSON syntax",
        ],
    );
}

#[test]
fn wrong_role_names() {
    let line = r#"{"task": "x", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#;
    check_rejected(
        "roles.jsonl",
        line.as_bytes(),
        &[
            "line 1",
            "field `messages[0].role`",
            "unknown role \"user\"",
            "user -> input",
        ],
    );
}

#[test]
fn output_less_inputs() {
    let line = r#"{"task": "x", "messages": [{"role": "input", "content": "a"}, {"role": "output", "content": "b"}, {"role": "input", "content": "c"}]}"#;
    check_rejected(
        "io.jsonl",
        line.as_bytes(),
        &[
            "line 1",
            "messages[2].role",
            "input at position 2 has no output after it",
            "add the output",
        ],
    );
    check_rejected(
        "rows.csv",
        b"task,input,output\nt,question,\n",
        &[
            "rows.csv: line 2",
            "field `output`",
            "has an input but no output",
        ],
    );
}

#[test]
fn out_of_order_roles() {
    let late_description = r#"{"task": "x", "messages": [{"role": "output", "content": "a"}, {"role": "description", "content": "d"}]}"#;
    check_rejected(
        "order.jsonl",
        late_description.as_bytes(),
        &[
            "messages[1].role",
            "out-of-order roles",
            "move the description",
        ],
    );
    let unpaired = r#"{"task": "x", "messages": [{"role": "input", "content": "a"}, {"role": "output", "content": "b"}, {"role": "output", "content": "c"}]}"#;
    check_rejected(
        "order.jsonl",
        unpaired.as_bytes(),
        &[
            "messages[2].role",
            "output at position 2 has no input before it",
        ],
    );
}

#[test]
fn empty_file() {
    for (name, content) in [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n\n  \n"),
        ("empty.csv", ""),
        ("empty.json", "[]"),
        ("header.csv", "task,output\n"),
    ] {
        let err = import_with(name, content.as_bytes(), &ImportOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{name} must fail"));
        assert!(matches!(err, ImportError::Empty { .. }), "{name}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("{name}: the file is empty")),
            "{err}"
        );
    }
}

#[test]
fn probabilities_that_do_not_sum_to_one() {
    let line = r#"{"task": "u", "description": "d", "options": ["a", "b"], "probs": [0.5, 0.49]}"#;
    check_rejected(
        "p.jsonl",
        line.as_bytes(),
        &[
            "line 1",
            "field `probs`",
            "sum to 0.99",
            "tolerance 1e-6",
            "normalise",
        ],
    );
    // Within 1e-6 is accepted.
    import_ok(
        "p.jsonl",
        r#"{"task": "u", "description": "d", "options": ["a", "b"], "probs": [0.5, 0.4999995]}"#,
    );
    let negative =
        r#"{"task": "u", "description": "d", "options": ["a", "b"], "probs": [1.5, -0.5]}"#;
    check_rejected(
        "p.jsonl",
        negative.as_bytes(),
        &["probs[0]", "1.5 is not a probability"],
    );
    let short =
        r#"{"task": "u", "description": "d", "options": ["a", "b", "c"], "probs": [0.5, 0.5]}"#;
    check_rejected(
        "p.jsonl",
        short.as_bytes(),
        &["has 2 probabilities for 3 options"],
    );
}

#[test]
fn non_utf8_bytes() {
    let mut bytes = COIN.as_bytes().to_vec();
    bytes.extend_from_slice(
        b"\n{\"task\": \"x\", \"messages\": [{\"role\": \"output\", \"content\": \"caf\xe9\"}]}\n",
    );
    check_rejected(
        "latin1.jsonl",
        &bytes,
        &[
            "latin1.jsonl: line 2",
            "not valid UTF-8 (byte 0xe9 at column",
            "re-save the file as UTF-8",
        ],
    );
    check_rejected(
        "latin1.csv",
        b"task,output\nt,caf\xe9\n",
        &["latin1.csv: line 2", "field `output`", "not valid UTF-8"],
    );
}

#[test]
fn wrong_types() {
    let line = r#"{"task": "x", "messages": [{"role": "output", "content": 42}]}"#;
    check_rejected(
        "types.jsonl",
        line.as_bytes(),
        &["messages[0].content", "expected a string, found a number"],
    );
    let line = r#"{"task": "x", "messages": "heads"}"#;
    check_rejected(
        "types.jsonl",
        line.as_bytes(),
        &["field `messages`", "expected a list, found a string"],
    );
    let line = r#"{"task": 3, "messages": [{"role": "output", "content": "a"}]}"#;
    check_rejected(
        "types.jsonl",
        line.as_bytes(),
        &["field `task`", "expected a string, found a number"],
    );
    check_rejected(
        "types.jsonl",
        b"[1, 2]\n",
        &["line 1", "expected a JSON object, found an array"],
    );
    let probs =
        r#"{"task": "u", "description": "d", "options": ["a", "b"], "probs": ["0.5", "0.5"]}"#;
    check_rejected(
        "types.jsonl",
        probs.as_bytes(),
        &["probs[0]", "expected a number, found a string"],
    );
}

#[test]
fn duplicate_option_labels() {
    let line = r#"{"task": "u", "description": "d", "options": ["red", "blue", "red"], "probs": [0.25, 0.5, 0.25]}"#;
    check_rejected(
        "dup.jsonl",
        line.as_bytes(),
        &[
            "field `options`",
            "duplicate option label \"red\"",
            "distinct label",
        ],
    );
}

#[test]
fn diverse_valid_rules_are_checked() {
    let bad_rule =
        r#"{"task": "t", "description": "d", "examples": ["a"], "rule": {"type": "palindrome"}}"#;
    check_rejected(
        "dv.jsonl",
        bad_rule.as_bytes(),
        &["field `rule`", "not a validity rule", "closed_set"],
    );
    let bad_regex = r#"{"task": "t", "description": "d", "examples": ["a"], "rule": {"type": "regex", "pattern": "("}}"#;
    check_rejected(
        "dv.jsonl",
        bad_regex.as_bytes(),
        &["field `rule`", "does not compile"],
    );
    let bad_example = r#"{"task": "t", "description": "d", "examples": ["7", "007"], "rule": {"type": "integer_range", "min": 1, "max": 10}}"#;
    check_rejected(
        "dv.jsonl",
        bad_example.as_bytes(),
        &[
            "examples[1]",
            "\"007\" is not valid under its own integer_range rule",
        ],
    );
    let bad_length = r#"{"task": "t", "description": "d", "examples": ["7"], "rule": {"type": "integer_range", "min": 1, "max": 10}, "max_new_tokens": -3}"#;
    check_rejected(
        "dv.jsonl",
        bad_length.as_bytes(),
        &["field `max_new_tokens`", "not a whole number of tokens"],
    );
}

#[test]
fn unknown_shape_names_the_fields_and_suggests_as() {
    let err = import_with(
        "odd.jsonl",
        br#"{"foo": 1, "bar": 2}"#,
        &ImportOptions::default(),
    )
    .err()
    .expect("must fail");
    let text = err.to_string();
    assert!(text.contains("`foo`, `bar`"), "{text}");
    assert!(
        matches!(err.fix(), Some(Fix::Setting { setting, .. }) if setting == "as"),
        "{text}"
    );
    // Forcing a shape reports what that shape is missing instead.
    let forced = ImportOptions {
        shape: Some(Shape::Rows),
        ..Default::default()
    };
    let err = import_with("odd.jsonl", br#"{"foo": 1}"#, &forced)
        .err()
        .expect("must fail");
    let ImportError::Invalid { errors, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        errors[0]
            .to_string()
            .contains("field `output`: is missing or empty"),
        "{err}"
    );
}

// --- all or nothing, skip-invalid, limits ----------------------------------

#[test]
fn every_bad_row_is_listed_up_to_the_limit_with_a_count() {
    let mut content = String::new();
    for i in 0..10 {
        if i % 2 == 0 {
            content.push_str(COIN);
        } else {
            content.push_str(r#"{"task": "x", "messages": [{"role": "bot", "content": "a"}]}"#);
        }
        content.push('\n');
    }
    let options = ImportOptions {
        error_limit: 3,
        ..Default::default()
    };
    let err = import_with("mixed.jsonl", content.as_bytes(), &options)
        .err()
        .expect("must fail");
    let ImportError::Invalid {
        rejected, errors, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*rejected, 5);
    assert_eq!(
        errors.iter().map(|e| e.location).collect::<Vec<_>>(),
        [Location::Line(2), Location::Line(4), Location::Line(6)]
    );
    assert!(err.to_string().contains("5 invalid row(s)"), "{err}");
    assert!(
        matches!(err.fix(), Some(Fix::Setting { setting, .. }) if setting == "skip_invalid"),
        "{err}"
    );

    let skip = ImportOptions {
        skip_invalid: true,
        error_limit: 3,
        ..Default::default()
    };
    let got = import_with("mixed.jsonl", content.as_bytes(), &skip)
        .expect("skip-invalid imports the valid rows");
    assert_eq!(sequences(&got.items).len(), 5);
    assert_eq!((got.report.rejected, got.report.errors.len()), (5, 3));
    assert_eq!(
        (got.report.files[0].imported, got.report.files[0].rejected),
        (5, 5)
    );
}

#[test]
fn a_task_defined_twice_is_rejected() {
    let row = r#"{"task": "a", "split": "train", "kind": "sequence", "descriptions": ["x"]}"#;
    check_rejected(
        "tasks.jsonl",
        format!("{row}\n{row}\n").as_bytes(),
        &["line 2", "task \"a\" is defined twice"],
    );
}

#[test]
fn unknown_extension_and_empty_folder() {
    let err = import_with("data.xlsx", b"x", &ImportOptions::default())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("unknown file type"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = import_paths(&[dir.path().to_path_buf()], &ImportOptions::default())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("no supported data files"), "{err}");
}

#[test]
fn cancellation_stops_the_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let content = format!("{COIN}\n").repeat(10_000);
    let path = write(&dir, "big.jsonl", content.as_bytes());
    let mut items = Vec::new();
    let err = import::import(
        &[path],
        &ImportOptions::default(),
        &mut items,
        &mut |_| {},
        &AtomicBool::new(true),
    )
    .err();
    assert!(matches!(err, Some(ImportError::Cancelled)), "{err:?}");
    assert!(items.len() < 10_000);
}

#[test]
fn built_suite_imports_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = spectrum_suite::builtin::SuiteConfig {
        size: 5,
        ..Default::default()
    };
    let suite = spectrum_suite::builtin::build(&config);
    spectrum_suite::builtin::write(&suite, dir.path()).expect("write");
    let got = import_paths(&[dir.path().to_path_buf()], &ImportOptions::default()).expect("import");
    assert_eq!(got.report.rejected, 0);
    let shapes: Vec<Shape> = got.report.files.iter().map(|f| f.shape).collect();
    assert_eq!(shapes[0], Shape::Tasks);
    assert!(
        shapes.contains(&Shape::Messages)
            && shapes.contains(&Shape::Distribution)
            && shapes.contains(&Shape::DiverseValid)
    );
    // What comes back is exactly what was generated.
    let back: Vec<_> = sequences(&got.items).into_iter().cloned().collect();
    assert_eq!(back, suite.sequences);
    let rules: Vec<ValidityRule> = got
        .items
        .iter()
        .filter_map(|i| {
            if let Item::Validity(v) = i {
                Some(v.rule.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        rules,
        suite
            .validity
            .iter()
            .map(|v| v.rule.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(got.report.counts.tasks as usize, suite.tasks.len());
}
