//! The schema, as an ordered list of migrations. A store records how many it
//! has applied in `PRAGMA user_version`; opening runs the missing ones, each in
//! its own transaction. Never edit a released migration: append a new one.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: datasets and what they hold; models and runs for the later stages.
    r#"
    CREATE TABLE datasets (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        source        TEXT NOT NULL,              -- the paths as the user gave them
        import_key    TEXT NOT NULL UNIQUE,       -- content hash + options that change the result
        content_hash  TEXT NOT NULL,
        files         TEXT NOT NULL DEFAULT '[]', -- JSON: per-file format, shape and counts
        imported_at   TEXT NOT NULL
    );
    CREATE TABLE tasks (
        id            INTEGER PRIMARY KEY,
        dataset_id    INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        category      TEXT NOT NULL,
        split         TEXT NOT NULL CHECK (split IN ('train', 'held_out')),
        kind          TEXT NOT NULL CHECK (kind IN ('sequence', 'distribution', 'diverse_valid')),
        descriptions  TEXT NOT NULL,              -- JSON array of strings
        UNIQUE (dataset_id, name)
    );
    CREATE TABLE sequences (
        id            INTEGER PRIMARY KEY,
        task_id       INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        messages      TEXT NOT NULL,              -- JSON array of {role, content}
        examples      INTEGER NOT NULL,           -- number of outputs
        metadata      TEXT                        -- JSON object of extra fields, or NULL
    );
    CREATE INDEX sequences_by_task ON sequences(task_id);
    CREATE TABLE distribution_items (
        id            INTEGER PRIMARY KEY,
        task_id       INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        description   TEXT NOT NULL,
        input         TEXT NOT NULL,
        options       TEXT NOT NULL,              -- JSON array of strings
        probs         TEXT NOT NULL,              -- JSON array of numbers summing to 1
        ordinal       INTEGER NOT NULL,
        metadata      TEXT
    );
    CREATE INDEX distribution_items_by_task ON distribution_items(task_id);
    CREATE TABLE validity_tasks (
        id            INTEGER PRIMARY KEY,
        task_id       INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        description   TEXT NOT NULL,
        examples      TEXT NOT NULL,              -- JSON array of strings
        rule          TEXT NOT NULL               -- JSON validity rule
    );
    CREATE INDEX validity_tasks_by_task ON validity_tasks(task_id);
    CREATE TABLE models (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        family        TEXT NOT NULL,
        source        TEXT NOT NULL,
        path          TEXT NOT NULL,
        parameters    INTEGER NOT NULL,
        dtype         TEXT NOT NULL,
        content_hash  TEXT NOT NULL,
        added_at      TEXT NOT NULL
    );
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY,
        kind          TEXT NOT NULL CHECK (kind IN ('train', 'eval')),
        status        TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
        spec          TEXT NOT NULL,              -- JSON: the full run spec
        spec_hash     TEXT NOT NULL,
        model_id      INTEGER REFERENCES models(id) ON DELETE SET NULL,
        seed          INTEGER NOT NULL,
        device        TEXT NOT NULL,
        app_version   TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        finished_at   TEXT,
        error         TEXT
    );
    "#,
    // 2: training runs: where their files are, how far they got, their metrics.
    r#"
    ALTER TABLE runs ADD COLUMN name TEXT;
    ALTER TABLE runs ADD COLUMN out_dir TEXT;
    ALTER TABLE runs ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN total_steps INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN updated_at TEXT;
    ALTER TABLE runs ADD COLUMN result_model_id INTEGER REFERENCES models(id) ON DELETE SET NULL;
    CREATE TABLE run_steps (
        run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step          INTEGER NOT NULL,
        loss          REAL NOT NULL,
        lr            REAL NOT NULL,
        grad_norm     REAL NOT NULL,
        tokens        INTEGER NOT NULL,           -- loss tokens in the step
        tokens_per_s  REAL NOT NULL,              -- all tokens (with context) per second
        elapsed_s     REAL NOT NULL,
        PRIMARY KEY (run_id, step)
    );
    CREATE TABLE run_evals (
        run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step          INTEGER NOT NULL,
        loss          REAL NOT NULL,              -- mean loss of outputs with index >= 1
        acc           REAL NOT NULL,
        outputs       INTEGER NOT NULL,
        PRIMARY KEY (run_id, step)
    );
    "#,
    // 3: evaluation results: per-task summaries and every output, item and
    // sample behind them, as JSON records with typed views for SQL users.
    r#"
    CREATE TABLE eval_tasks (
        run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        family        TEXT NOT NULL CHECK (family IN ('steer', 'dist', 'valid')),
        task          TEXT NOT NULL,
        summary       TEXT NOT NULL,              -- JSON: the task's summary
        PRIMARY KEY (run_id, family, task)
    );
    CREATE TABLE eval_rows (
        run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        family        TEXT NOT NULL,
        task          TEXT NOT NULL,
        position      INTEGER NOT NULL,
        record        TEXT NOT NULL,              -- JSON: one output, item or sample
        PRIMARY KEY (run_id, family, task, position)
    );
    CREATE VIEW eval_outputs AS
        SELECT run_id, task, json_extract(record, '$.sequence') AS sequence,
               json_extract(record, '$.index') AS output_index,
               json_extract(record, '$.loss') AS loss, json_extract(record, '$.acc') AS acc,
               json_extract(record, '$.tokens') AS tokens
        FROM eval_rows WHERE family = 'steer';
    CREATE VIEW eval_items AS
        SELECT run_id, task, json_extract(record, '$.id') AS item,
               json_extract(record, '$.options') AS options, json_extract(record, '$.target') AS target,
               json_extract(record, '$.p') AS p, json_extract(record, '$.q') AS q,
               json_extract(record, '$.coverage') AS coverage, json_extract(record, '$.js') AS js,
               json_extract(record, '$.kl') AS kl, json_extract(record, '$.reverse_kl') AS reverse_kl,
               json_extract(record, '$.tv') AS tv, json_extract(record, '$.cross_entropy') AS cross_entropy,
               json_extract(record, '$.mode_match') AS mode_match,
               json_extract(record, '$.wasserstein') AS wasserstein
        FROM eval_rows WHERE family = 'dist';
    CREATE VIEW eval_samples AS
        SELECT run_id, task, json_extract(record, '$.setting') AS setting,
               json_extract(record, '$.temperature') AS temperature,
               json_extract(record, '$.index') AS sample_index,
               json_extract(record, '$.text') AS text, json_extract(record, '$.valid') AS valid
        FROM eval_rows WHERE family = 'valid';
    "#,
    // Per-task sample length of diverse-valid tasks (the reference's max_new_tokens).
    "ALTER TABLE validity_tasks ADD COLUMN max_new_tokens INTEGER;",
    // 5: provenance recorded when a run starts: the model's content hash and
    // the datasets it reads (name and hash kept if the dataset is removed);
    // devices spelled as `DeviceSpec`'s Display (`cuda:0`, was `cuda(0)`).
    r#"
    ALTER TABLE runs ADD COLUMN model_hash TEXT;
    CREATE TABLE run_datasets (
        run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        dataset_id    INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
        name          TEXT NOT NULL,
        content_hash  TEXT NOT NULL,
        PRIMARY KEY (run_id, name, content_hash)
    );
    UPDATE runs SET device = 'cuda:' || substr(device, 6, length(device) - 6) WHERE device LIKE 'cuda(%)';
    "#,
    // 6: who runs a run: one lease per running run (see leases.rs).
    r#"
    CREATE TABLE run_leases (
        run_id        INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        token         TEXT NOT NULL,              -- this acquisition's own
        pid           INTEGER NOT NULL,
        host          TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        heartbeat_at  REAL NOT NULL               -- seconds since the epoch
    );
    "#,
    // 7: a task an evaluation family could not run is recorded as skipped,
    // with its reason, instead of a `{"skipped": reason}` summary.
    r#"
    ALTER TABLE eval_tasks ADD COLUMN skipped TEXT;  -- the reason; NULL: done
    UPDATE eval_tasks SET skipped = json_extract(summary, '$.skipped'), summary = 'null'
        WHERE json_valid(summary) AND json_type(summary, '$.skipped') = 'text';
    "#,
    // 8: evaluation results are the store's own records (records.rs), each
    // task's with the version of its record; all written so far are version 1.
    "ALTER TABLE eval_tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;",
];
