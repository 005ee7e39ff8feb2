//! How long a large report takes: 3 runs x 90 tasks, laid out the way
//! `spectrum report` lays it out (steerability curves in figures of 9 tasks,
//! 30 distributional tasks with item bars, the validity sweep, three heatmaps
//! of 90 tasks, per-task tables), from synthetic values.
//!
//!     cargo bench -p spectrum-report --bench report_speed
//!
//! Target (issue 6): well under 5 seconds on a 2-core CPU.

use std::time::Instant;

use spectrum_report::{Block, Chart, DocumentSpec, Figure, ItemBars, Panel, Section, Series, pdf};

const RUNS: usize = 3;
const TASKS: usize = 90;

fn runs() -> Vec<String> {
    (0..RUNS).map(|r| format!("run-{r} (spectrum)")).collect()
}

fn figure(title: String, chart: Chart, height: u32) -> Figure {
    Figure {
        title,
        runs: runs(),
        chart,
        width: 640,
        height,
    }
}

fn main() {
    let start = Instant::now();
    let tasks: Vec<String> = (0..TASKS).map(|t| format!("task_{t:02}")).collect();
    let mut steer = Vec::new();
    for chunk in tasks.chunks(9) {
        let panels = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| Panel {
                title: t.clone(),
                series: (0..RUNS)
                    .map(|r| Series {
                        run: r,
                        points: (0..20)
                            .map(|j| {
                                (
                                    j as f64,
                                    (3.0 + i as f64 * 0.1 + r as f64) / (1.0 + j as f64 * 0.2),
                                    0.1,
                                )
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect::<Vec<_>>();
        let rows = panels.len().div_ceil(3) as u32;
        steer.push(Block::Figure {
            svg: figure(
                "Steerability".into(),
                Chart::Steer {
                    metric: "loss".into(),
                    panels,
                },
                70 + 200 * rows,
            )
            .svg()
            .expect("svg"),
            caption: "curves".into(),
        });
    }
    let mut dist = Vec::new();
    for t in tasks.iter().take(30) {
        let items = (0..6)
            .map(|i| ItemBars {
                title: format!("{t}/{i}"),
                options: (0..5).map(|o| format!("option {o}")).collect(),
                target: vec![0.2; 5],
                models: (0..RUNS)
                    .map(|r| {
                        (
                            r,
                            vec![0.1 + 0.05 * r as f64, 0.3, 0.2, 0.2, 0.2 - 0.05 * r as f64],
                        )
                    })
                    .collect(),
            })
            .collect();
        dist.push(Block::Figure {
            svg: figure(format!("{t}: items"), Chart::Items { items }, 450)
                .svg()
                .expect("svg"),
            caption: String::new(),
        });
    }
    let validity = figure(
        "Validity".into(),
        Chart::Validity {
            panels: ["description", "examples", "both"]
                .iter()
                .map(|s| Panel {
                    title: s.to_string(),
                    series: (0..RUNS)
                        .map(|r| Series {
                            run: r,
                            points: (0..5)
                                .map(|k| {
                                    (
                                        k as f64 * 3.0 + r as f64,
                                        0.9 - 0.15 * k as f64,
                                        0.5 + 0.3 * k as f64,
                                    )
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        },
        260,
    );
    let heat: Vec<Block> = (0..3)
        .map(|k| {
            let values: Vec<Vec<Option<f64>>> = (0..TASKS)
                .map(|t| {
                    (0..RUNS)
                        .map(|r| Some(1.0 + (t * (r + 1) + k) as f64 % 7.0 / 10.0))
                        .collect()
                })
                .collect();
            Block::Figure {
                svg: figure(
                    "Per task".into(),
                    Chart::Heatmap {
                        metric: "loss".into(),
                        lower_is_better: true,
                        tasks: tasks.clone(),
                        improvement: values
                            .iter()
                            .map(|row: &Vec<Option<f64>>| {
                                row.iter().map(|v| Some(row[0]? - (*v)?)).collect()
                            })
                            .collect(),
                        values,
                        baseline: 0,
                    },
                    140 + 22 * TASKS as u32,
                )
                .svg()
                .expect("svg"),
                caption: String::new(),
            }
        })
        .collect();
    let table = |n: usize| Block::Table {
        header: ["task", "run", "k", "loss", "acc"]
            .map(String::from)
            .to_vec(),
        rows: (0..n)
            .map(|i| {
                vec![
                    format!("task_{:02}", i / RUNS),
                    format!("run-{}", i % RUNS),
                    "20".into(),
                    "1.234 ± 0.056".into(),
                    "0.345".into(),
                ]
            })
            .collect(),
        widths: vec![0.25, 0.35, 0.1, 0.18, 0.12],
    };
    let charts = start.elapsed().as_secs_f64();
    let spec = DocumentSpec {
        title: "Benchmark report".into(),
        title_lines: vec!["3 runs x 90 tasks".into()],
        created: (2026, 11, 27, 0, 0, 0),
        producer: "bench".into(),
        sections: vec![
            Section {
                title: "Summary".into(),
                blocks: vec![table(RUNS)],
            },
            Section {
                title: "Steerability".into(),
                blocks: steer.into_iter().chain([table(TASKS * RUNS)]).collect(),
            },
            Section {
                title: "Distributional".into(),
                blocks: dist.into_iter().chain([table(30 * RUNS)]).collect(),
            },
            Section {
                title: "Validity".into(),
                blocks: vec![Block::Figure {
                    svg: validity.svg().expect("svg"),
                    caption: String::new(),
                }],
            },
            Section {
                title: "Tasks".into(),
                blocks: heat,
            },
        ],
    };
    let bytes = pdf::render(&spec).expect("pdf");
    let total = start.elapsed().as_secs_f64();
    println!(
        "report of {RUNS} runs x {TASKS} tasks: {total:.2} s ({charts:.2} s drawing {} charts, {:.2} s laying out and writing the PDF), {:.1} MB",
        10 + 30 + 1 + 3,
        total - charts,
        bytes.len() as f64 / 1e6
    );
    println!(
        "target: well under 5 s -> {}",
        if total < 5.0 { "met" } else { "NOT met" }
    );
}
