//! The PDF from fixed content: identical bytes for identical input, and what
//! poppler and qpdf (Debian poppler-utils, qpdf; `.ci/run` installs them) see
//! in it: the page count, the text, a valid structure.

mod common;

use std::process::Command;

use spectrum_report::{Block, DocumentSpec, Section, pdf};

fn spec() -> DocumentSpec {
    let figures = common::figures();
    DocumentSpec {
        title: "Spectrum Studio report: fixture".into(),
        title_lines: vec![
            "Evaluation run 1 (instruct): model SmolLM2 (content hash 0123abcd).".into(),
        ],
        created: (2026, 11, 27, 12, 0, 0),
        producer: "Spectrum Studio test".into(),
        sections: vec![
            Section {
                title: "Summary".into(),
                blocks: vec![
                    Block::Text("Means over tasks with equal weight.".into()),
                    Block::Table {
                        header: vec!["run".into(), "steer loss".into()],
                        rows: (0..80)
                            .map(|i| {
                                vec![format!("run-{i}"), format!("{:.3}", 1.0 + i as f64 / 100.0)]
                            })
                            .collect(),
                        widths: vec![0.6, 0.4],
                    },
                ],
            },
            Section {
                title: "Charts".into(),
                blocks: figures
                    .iter()
                    .map(|(kind, f)| Block::Figure {
                        svg: f.svg().expect("svg"),
                        caption: format!("the {kind} chart"),
                    })
                    .collect(),
            },
            Section {
                title: "Appendix".into(),
                blocks: vec![Block::Code("{\n  \"learning_rate\": 0.001\n}".into())],
            },
        ],
    }
}

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} is needed for this test (Debian: poppler-utils, qpdf): {e}")
    });
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pdf_is_deterministic_valid_and_searchable() {
    let bytes = pdf::render(&spec()).expect("pdf");
    assert_eq!(
        bytes,
        pdf::render(&spec()).expect("pdf"),
        "same input, same bytes"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, &bytes).expect("write");
    let p = path.to_str().expect("utf-8");

    let info = tool("pdfinfo", &[p]);
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("page count");
    // Title, contents, summary (80 rows: two pages), charts (several pages), appendix.
    assert!((7..=12).contains(&pages), "{pages} pages\n{info}");
    assert!(info.contains("Spectrum Studio report: fixture"), "{info}");
    assert!(info.contains("2026"), "{info}");

    let text = tool("pdftotext", &["-layout", p, "-"]);
    for needle in [
        "Contents",
        "1. Summary",
        "2. Charts",
        "3. Appendix",
        "run-79",
        "1.790",
        "learning_rate",
        "coin_flip",
        "tuned (spectrum)",
        "the heatmap chart",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} is not in the text:\n{text}"
        );
    }
    // Page numbers on every page but the title page.
    let compact: String = text.split_whitespace().collect();
    assert!(
        compact.contains(&format!("2/{pages}")) && compact.contains(&format!("{pages}/{pages}"))
    );

    let check = Command::new("qpdf")
        .args(["--check", p])
        .output()
        .expect("qpdf (Debian: qpdf)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
