//! Writes the end-to-end fixture for `scripts/check_eval.py`: the tiny model
//! and the exact token ids our evaluation scores.
//!
//!     cargo run -p spectrum-eval --example eval_fixture -- OUT_DIR

#[path = "../tests/common/fixture.rs"]
mod fixture;

use serde_json::json;
use spectrum_eval::{Settings, dist, steer};
use spectrum_lm::PromptFormat;

fn main() {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/tmp/eval-fixture".into()),
    );
    let _ = std::fs::remove_dir_all(&out);
    fixture::model(&out.join("model"));
    let tok =
        spectrum_lm::tokenizer::TextTokenizer::from_dir(&out.join("model")).expect("tokenizer");
    let mut sequences = Vec::new();
    let mut items = Vec::new();
    for format in [
        PromptFormat::Spectrum,
        PromptFormat::Colon,
        PromptFormat::Chat,
    ] {
        let settings = Settings::default();
        let (_, chosen) = steer::prepare(
            &tok,
            &tok,
            format,
            "fixture",
            &fixture::sequences(),
            &settings,
        )
        .expect("prepare");
        for (id, r) in chosen {
            sequences.push(json!({
                "format": format, "id": id, "ids": r.ids,
                "outputs": r.outputs.iter().map(|o| json!({"index": o.index, "start": o.start, "end": o.end, "loss": o.example.is_some()})).collect::<Vec<_>>(),
            }));
        }
        for item in fixture::items() {
            let (prompt, options, _) = dist::item_tokens(&tok, format, &item).expect("tokens");
            items.push(json!({
                "format": format, "id": dist::item_id(&item, 0), "prompt": prompt,
                "options": options, "target": item.probs, "ordinal": item.ordinal,
            }));
        }
    }
    let fixture = json!({"sequences": sequences, "items": items});
    std::fs::write(
        out.join("fixture.json"),
        serde_json::to_string(&fixture).expect("json"),
    )
    .expect("write");
    println!("{}", out.display());
}
