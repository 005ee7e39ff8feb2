//! Turn tokens added to a model that lacks them (METHOD.md §2): the tokenizer
//! and the embedding grow, the new rows come from the mean or a sibling, and
//! the model is otherwise unchanged.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, IndexOp, Tensor};
use spectrum_lm::added_tokens::{AddedTokens, RowInit, add_tokens, missing_turn_tokens};
use spectrum_lm::template::{self, PromptFormat};
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{LanguageModel, tiny};

fn weights(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).expect("weights")
}

fn rows(t: &Tensor, ids: std::ops::Range<usize>) -> Vec<Vec<f32>> {
    t.i(ids).and_then(|r| r.to_vec2()).expect("rows")
}

fn bare_model(dir: &Path, seed: u64) {
    tiny::write_model(dir, 32, 1, seed).expect("tiny");
    tiny::strip_turn_tokens(dir).expect("strip");
}

#[test]
fn mean_rows_extend_the_model_and_leave_the_rest_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (base, out) = (tmp.path().join("base"), tmp.path().join("out"));
    bare_model(&base, 3);
    let tok = TextTokenizer::from_dir(&base).expect("tokenizer");
    let missing = missing_turn_tokens(&tok);
    assert_eq!(missing, ["<|im_start|>", "<|im_end|>"]);
    use spectrum_core::{Message, Role};
    let messages = vec![
        Message::new(Role::Description, "Name a colour."),
        Message::new(Role::Output, "red"),
        Message::new(Role::Output, "blue"),
    ];
    let err =
        template::render(&tok, PromptFormat::Spectrum, &messages, None).expect_err("no turns");
    let fix = spectrum_core::Explain::fix(&err);
    assert!(
        matches!(&fix, Some(spectrum_core::Fix::Setting { setting, advice }) if setting == "template" && advice.contains("add-tokens")),
        "{err}: {fix:?}"
    );

    let added = add_tokens(&base, &out, &missing, RowInit::Mean).expect("add");
    let v = tiny::vocab().len();
    assert_eq!(added.ids(), v..v + 2);
    assert_eq!(
        AddedTokens::read(&out).expect("marker"),
        Some(added.clone())
    );
    assert_eq!(
        AddedTokens::read(&base).expect("none"),
        None,
        "the base folder is untouched"
    );

    let tok = TextTokenizer::from_dir(&out).expect("tokenizer");
    assert_eq!(
        tok.encode("<|im_start|>output\n").expect("encode")[0],
        v as u32
    );
    assert_eq!(tok.token_id("<|im_end|>"), Some(v as u32 + 1));
    let rendered =
        template::render(&tok, PromptFormat::Spectrum, &messages, None).expect("spectrum");
    assert!(rendered.ids.contains(&(v as u32 + 1)));

    let (old, new) = (weights(&base), weights(&out));
    let (e0, e1) = (
        &old["model.embed_tokens.weight"],
        &new["model.embed_tokens.weight"],
    );
    assert_eq!(e1.dims(), [v + 2, 32]);
    assert_eq!(rows(e0, 0..v), rows(e1, 0..v), "existing rows unchanged");
    let mean: Vec<f32> = e0.mean(0).and_then(|m| m.to_vec1()).expect("mean");
    for row in rows(e1, v..v + 2) {
        for (a, b) in row.iter().zip(&mean) {
            assert!((a - b).abs() < 1e-6);
        }
    }
    let config = spectrum_lm::ModelConfig::from_file(&out.join("config.json")).expect("config");
    assert_eq!(config.vocab_size, v + 2);

    // Text without the new tokens scores exactly as before.
    let ids = vec![vec![5u32, 40, 41, 42, 7, 10, 11]];
    let score = |dir: &Path| {
        let mut m = spectrum_lm::load_local(dir, spectrum_lm::DeviceSpec::Cpu).expect("load");
        m.score_tokens(&ids).expect("score")[0].logprobs.clone()
    };
    let (a, b) = (score(&base), score(&out));
    for (x, y) in a.iter().zip(&b) {
        // Two more tokens share the probability mass: only slightly lower.
        assert!(y <= x && x - y < 1e-2, "{a:?} vs {b:?}");
    }
}

#[test]
fn sibling_rows_are_copied_and_bad_siblings_are_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (base, sibling, out) = (
        tmp.path().join("base"),
        tmp.path().join("instruct"),
        tmp.path().join("out"),
    );
    bare_model(&base, 3);
    tiny::write_model(&sibling, 32, 1, 9).expect("sibling");
    let tokens = vec!["<|im_start|>".to_string(), "<|im_end|>".to_string()];
    let added = add_tokens(&base, &out, &tokens, RowInit::Sibling(&sibling)).expect("add");
    let embed = &weights(&out)["model.embed_tokens.weight"];
    let from = &weights(&sibling)["model.embed_tokens.weight"];
    // The tiny tokenizer has <|im_start|> at 1 and <|im_end|> at 2.
    assert_eq!(rows(embed, added.ids()), rows(from, 1..3));
    assert_eq!(added.init, sibling.display().to_string());

    let wide = tmp.path().join("wide");
    tiny::write_model(&wide, 64, 1, 9).expect("wide");
    let err = add_tokens(
        &base,
        &tmp.path().join("x"),
        &tokens,
        RowInit::Sibling(&wide),
    )
    .expect_err("hidden size");
    assert!(
        err.to_string().contains("wide") && err.to_string().contains("hidden size"),
        "{err}"
    );
    let err = add_tokens(
        &base,
        &tmp.path().join("y"),
        &tokens,
        RowInit::Sibling(&base),
    )
    .expect_err("no such token");
    assert!(err.to_string().contains("no <|im_start|> token"), "{err}");
    let err = add_tokens(&out, &tmp.path().join("z"), &tokens, RowInit::Mean).expect_err("present");
    assert!(
        err.to_string().contains("already has <|im_start|>"),
        "{err}"
    );
}
