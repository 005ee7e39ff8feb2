//! Lists the recipe files under `recipes/held_out/` and
//! `recipes/distributional/` for `paper::RECIPES`, so that a new recipe is
//! one new file (and its line in `recipes/paper.toml`).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let mut names = Vec::new();
    for dir in ["held_out", "distributional"] {
        let folder = root.join(dir);
        println!("cargo::rerun-if-changed={}", folder.display());
        let entries =
            std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let file = path.file_name().expect("a file name").to_string_lossy();
                names.push(format!("{dir}/{file}"));
            }
        }
    }
    names.sort();
    let mut out = String::from("&[\n");
    for name in &names {
        let path = root.join(name);
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.display()).expect("write");
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("recipes.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
