//! Every chart kind drawn from fixed data: its SVG structure (element counts
//! and every text) equals the stored reference, and PNGs come out at the size
//! asked. After an intended change, `SPECTRUM_BLESS=1 cargo test -p
//! spectrum-report --test charts` rewrites the reference; look at the SVGs
//! (written to target/tmp/charts/) before committing it.

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// What an SVG is made of: how many of each element, and its texts in order.
fn structure(svg: &str) -> Value {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut texts = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if name.is_empty() {
            continue;
        }
        *counts.entry(name.clone()).or_default() += 1;
        if let ("text", Some(open), Some(close)) =
            (name.as_str(), rest.find('>'), rest.find("</text>"))
        {
            texts.push(rest[open + 1..close].to_string());
        }
    }
    json!({"elements": counts, "texts": texts})
}

#[test]
fn charts_match_their_reference_structure() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/charts.json");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("charts");
    std::fs::create_dir_all(&out).expect("mkdir");
    let mut now = serde_json::Map::new();
    for (kind, figure) in common::figures() {
        let svg = figure.svg().expect("svg");
        assert!(
            svg.starts_with("<svg") && svg.contains("width=\"640\""),
            "{kind}"
        );
        std::fs::write(out.join(format!("{kind}.svg")), &svg).expect("write");
        now.insert(kind.to_string(), structure(&svg));
    }
    let now = Value::Object(now);
    if std::env::var_os("SPECTRUM_BLESS").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&now).expect("json")).expect("bless");
    }
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(path).expect("reference (SPECTRUM_BLESS=1 writes it)"),
    )
    .expect("json");
    for (kind, want) in reference.as_object().expect("object") {
        assert_eq!(
            &now[kind], want,
            "{kind}: the chart changed (see target/tmp/charts/{kind}.svg)"
        );
    }
    // The texts a reader needs are there.
    let texts = |k: &str| now[k]["texts"].to_string();
    assert!(texts("steer").contains("coin_flip") && texts("steer").contains("tuned (spectrum)"));
    assert!(texts("items").contains("red") && texts("items").contains("urn/00001"));
    assert!(
        texts("heatmap").contains("1.500 (-0.500)"),
        "{}",
        texts("heatmap")
    );
    assert!(texts("training").contains("learning rate"));
}

#[test]
fn pngs_have_the_size_asked_for() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("charts");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (kind, figure) in common::figures() {
        let path = dir.join(format!("{kind}.png"));
        figure.png(&path, 2).expect("png");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{kind}");
        let (w, h) = (
            u32::from_be_bytes(bytes[16..20].try_into().expect("width")),
            u32::from_be_bytes(bytes[20..24].try_into().expect("height")),
        );
        assert_eq!((w, h), (figure.width * 2, figure.height * 2), "{kind}");
    }
}
