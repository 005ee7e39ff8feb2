//! Writes the PEFT fixture for `scripts/check_peft.py`:
//!
//!     cargo run -p spectrum-train --example peft_fixture -- OUT_DIR

#[path = "../tests/common/peft_fixture.rs"]
mod fixture;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/tmp/peft-fixture".into());
    let out = std::path::PathBuf::from(out);
    let _ = std::fs::remove_dir_all(&out);
    fixture::build(&out);
    std::fs::write(
        out.join("ids.json"),
        serde_json::to_string(&fixture::IDS).expect("json"),
    )
    .expect("write ids");
    println!("{}", out.display());
}
