//! Fixed figures of every kind, for the chart and PDF tests.

use spectrum_report::{Chart, Figure, ItemBars, Panel, Series};

pub fn runs() -> Vec<String> {
    vec!["instruct (chat)".into(), "tuned (spectrum)".into()]
}

fn curve(run: usize, start: f64) -> Series {
    Series {
        run,
        points: (0..8)
            .map(|j| {
                (
                    j as f64,
                    start / (1.0 + j as f64 * 0.3),
                    0.1 + 0.02 * j as f64,
                )
            })
            .collect(),
    }
}

pub fn figures() -> Vec<(&'static str, Figure)> {
    let fig = |title: &str, chart: Chart, height: u32| Figure {
        title: title.into(),
        runs: runs(),
        chart,
        width: 640,
        height,
    };
    vec![
        (
            "steer",
            fig(
                "Steerability",
                Chart::Steer {
                    metric: "loss (nats)".into(),
                    panels: vec![
                        Panel {
                            title: "coin_flip".into(),
                            series: vec![curve(0, 3.0), curve(1, 2.0)],
                        },
                        Panel {
                            title: "zipf_rank".into(),
                            series: vec![curve(0, 5.0), curve(1, 4.0)],
                        },
                    ],
                },
                300,
            ),
        ),
        (
            "items",
            fig(
                "urn: model vs target",
                Chart::Items {
                    items: vec![ItemBars {
                        title: "urn/00001".into(),
                        options: vec!["red".into(), "blue".into(), "green".into()],
                        target: vec![0.5, 0.3, 0.2],
                        models: vec![(0, vec![0.8, 0.1, 0.1]), (1, vec![0.55, 0.25, 0.2])],
                    }],
                },
                260,
            ),
        ),
        (
            "js",
            fig(
                "JS",
                Chart::JsHistogram {
                    edges: vec![0.0, 0.1, 0.2, 0.3],
                    width: 0.1,
                    runs: vec![(0, vec![1, 2, 1, 0]), (1, vec![3, 1, 0, 0])],
                },
                260,
            ),
        ),
        (
            "validity",
            fig(
                "Validity",
                Chart::Validity {
                    panels: vec![Panel {
                        title: "prompt: both".into(),
                        series: vec![
                            Series {
                                run: 0,
                                points: vec![(3.0, 0.9, 0.7), (6.0, 0.6, 1.0), (8.0, 0.3, 1.3)],
                            },
                            Series {
                                run: 1,
                                points: vec![(10.0, 0.95, 0.7), (20.0, 0.8, 1.0), (25.0, 0.5, 1.3)],
                            },
                        ],
                    }],
                },
                260,
            ),
        ),
        (
            "heatmap",
            fig(
                "Per task: loss",
                Chart::Heatmap {
                    metric: "loss".into(),
                    lower_is_better: true,
                    tasks: vec!["coin_flip".into(), "zipf_rank".into()],
                    values: vec![vec![Some(2.0), Some(1.5)], vec![Some(3.0), None]],
                    improvement: vec![vec![Some(0.0), Some(0.5)], vec![Some(0.0), None]],
                    baseline: 0,
                },
                200,
            ),
        ),
        (
            "training",
            Figure {
                title: "Training run 1".into(),
                runs: Vec::new(),
                chart: Chart::Training {
                    steps: (1..=20)
                        .map(|s| (s as f64, 2.0 / s as f64, 1e-3 * (20 - s) as f64 / 20.0))
                        .collect(),
                    evals: vec![(0.0, 3.0), (10.0, 2.5), (20.0, 2.2)],
                },
                width: 640,
                height: 260,
            },
        ),
    ]
}
