//! Our PEFT export is what `peft` loads: the adapter file is byte-identical to
//! the one `scripts/check_peft.py` loaded with peft + transformers, and our
//! merged model (and the adapter folder loaded as base + adapter) give the
//! logits peft gave.

#[path = "common/peft_fixture.rs"]
mod peft_fixture;

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

#[test]
fn exported_adapters_give_the_logits_peft_gives() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/peft.json"
        ))
        .expect("reference (recorded by scripts/check_peft.py)"),
    )
    .expect("json");
    let tmp = tempfile::tempdir().expect("tmp");
    peft_fixture::build(tmp.path());

    let bytes =
        std::fs::read(tmp.path().join("adapter/adapter_model.safetensors")).expect("adapter");
    assert_eq!(
        format!("{:x}", Sha256::digest(&bytes)),
        reference["adapter_sha256"].as_str().expect("sha"),
        "the export changed: re-run scripts/check_peft.py to check it with peft"
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("adapter/adapter_config.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);

    let want: Vec<Vec<Vec<f32>>> =
        serde_json::from_value(reference["logits"].clone()).expect("logits");
    let ids: Vec<u32> = peft_fixture::IDS.iter().flatten().copied().collect();
    let ids = Tensor::from_vec(ids, (2, 12), &Device::Cpu).expect("ids");
    for folder in ["merged", "adapter"] {
        let mut lm =
            spectrum_lm::load_local(&tmp.path().join(folder), spectrum_lm::DeviceSpec::Cpu)
                .expect("load");
        let got = lm
            .model
            .forward(&ids, None)
            .expect("forward")
            .to_dtype(DType::F32)
            .expect("f32");
        let got: Vec<Vec<Vec<f32>>> = got.to_vec3().expect("vec");
        let mut worst = 0f32;
        for (a, b) in got
            .iter()
            .flatten()
            .flatten()
            .zip(want.iter().flatten().flatten())
        {
            worst = worst.max((a - b).abs());
        }
        assert!(worst < 1e-4, "{folder}: max |ours - peft| = {worst}");
    }
}
