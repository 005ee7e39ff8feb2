//! End to end on a tiny random model: our evaluation (per-output losses from
//! one pass, option probabilities from the shared prompt's KV cache, the
//! alignment metrics) matches Hugging Face transformers + SciPy on the same
//! items within 1e-4, in all three prompt formats. The reference was recorded
//! by `scripts/check_eval.py`.

#[path = "common/fixture.rs"]
mod fixture;

use std::sync::atomic::AtomicBool;

use serde_json::Value;
use spectrum_eval::{Evaluator, Settings, dist, steer};
use spectrum_lm::{DeviceSpec, PromptFormat};

const TOL: f64 = 1e-4;

fn close(what: &str, ours: f64, theirs: &Value) {
    let theirs = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no reference value"));
    assert!(
        (ours - theirs).abs() <= TOL * (1.0 + theirs.abs()),
        "{what}: ours {ours}, transformers {theirs}"
    );
}

#[test]
fn evaluation_matches_transformers() {
    let reference: Value =
        serde_json::from_str(include_str!("reference/transformers.json")).expect("json");
    let tmp = tempfile::tempdir().expect("tmp");
    fixture::model(tmp.path());
    let mut lm = spectrum_lm::load_local(tmp.path(), DeviceSpec::Cpu).expect("model");
    let tok = lm.tokenizer.clone();
    let settings = Settings::default();
    let cancel = AtomicBool::new(false);
    let k_tokenizer = steer::KTokenizer {
        tokenizer: tok.clone(),
        name: "the fixture model's".into(),
    };
    let (mut outputs_checked, mut items_checked) = (0, 0);
    for format in [
        PromptFormat::Spectrum,
        PromptFormat::Colon,
        PromptFormat::Chat,
    ] {
        let name = serde_json::to_value(format).expect("format");
        let mut ev = Evaluator {
            lm: &mut lm,
            tok: &tok,
            format,
            settings: &settings,
            k_tokenizer: &k_tokenizer,
            cancel: &cancel,
        };
        let result = steer::evaluate(&mut ev, "fixture", &fixture::sequences(), &mut |_, _| {})
            .expect("steer");
        let want: Vec<&Value> = reference["sequences"]
            .as_array()
            .expect("sequences")
            .iter()
            .filter(|s| s["format"] == name)
            .collect();
        assert_eq!(result.summary.sequences, want.len(), "{format:?}");
        for s in want {
            for o in s["outputs"].as_array().expect("outputs") {
                let index = o["index"].as_u64().expect("index") as usize;
                let ours = result
                    .outputs
                    .iter()
                    .find(|x| x.sequence == s["id"] && x.index == index)
                    .expect("scored output");
                match ours.loss {
                    Some(loss) => {
                        close(
                            &format!("{format:?} {} output {index} loss", s["id"]),
                            loss,
                            &o["loss"],
                        );
                        // The fixture's `acc` is all tokens right.
                        assert_eq!(ours.all_acc.map(u64::from), o["acc"].as_u64());
                        outputs_checked += 1;
                    }
                    None => assert!(o["loss"].is_null()),
                }
            }
        }
        let result =
            dist::evaluate(&mut ev, "fixture", &fixture::items(), &mut |_, _| {}).expect("dist");
        for want in reference["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| i["format"] == name)
        {
            let ours = result
                .items
                .iter()
                .find(|i| i.id == want["id"])
                .expect("item");
            let a = &ours.alignment;
            let what = |m: &str| format!("{format:?} {} {m}", want["id"]);
            // Option probabilities are tiny under a random model: compare in log space.
            for (k, p) in a.p.iter().enumerate() {
                close(&what(&format!("log p[{k}]")), p.ln(), &want["logprobs"][k]);
            }
            for (k, q) in a.q.iter().enumerate() {
                close(&what(&format!("q[{k}]")), *q, &want["q"][k]);
            }
            close(
                &what("coverage"),
                a.coverage.ln(),
                &Value::from(want["coverage"].as_f64().expect("coverage").ln()),
            );
            close(&what("js"), a.js, &want["js"]);
            close(&what("kl"), a.kl, &want["kl"]);
            close(&what("reverse kl"), a.reverse_kl, &want["reverse_kl"]);
            close(&what("tv"), a.tv, &want["tv"]);
            close(
                &what("cross-entropy"),
                a.cross_entropy,
                &want["cross_entropy"],
            );
            assert_eq!(Some(a.mode_match), want["mode_match"].as_bool());
            match a.wasserstein {
                Some(w) => close(&what("w1"), w, &want["wasserstein"]),
                None => assert!(want["wasserstein"].is_null()),
            }
            items_checked += 1;
        }
    }
    assert!(outputs_checked >= 18, "{outputs_checked} outputs checked");
    assert_eq!(items_checked, 9);
}
