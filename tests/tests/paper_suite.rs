//! The paper's suite from its sources, against a local server that answers
//! like the Hugging Face hub (HF_ENDPOINT) and mirrors the public files
//! (SPECTRUM_SOURCE_MIRROR), with the fixture tables of
//! crates/spectrum-suite/tests/fixtures/paper: `suite list`, `suite fetch`
//! (download, cache reuse, resume after a cut connection, a gated dataset, a
//! changed schema, a file that must be requested from its authors, given and
//! missing), then `spectrum eval` on the imported tasks.

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::Ordering;

use spectrum_system_tests::Sandbox;
use spectrum_system_tests::hub::FakeHub;

fn fixture_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/spectrum-suite/tests/fixtures/paper")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(task: &str) -> Vec<u8> {
    fixture_file(&format!("{task}.parquet"))
}

/// GPQA's archive as its authors publish it: the CSV files under dataset/,
/// encrypted with the published password (ZipCrypto).
fn gpqa_zip() -> Vec<u8> {
    use std::io::Write;
    use zip::unstable::write::FileOptionsExt;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .with_deprecated_encryption(b"deserted-untie-orchid")
        .expect("a password");
    zip.start_file("dataset/gpqa_main.csv", options)
        .expect("a member");
    zip.write_all(&fixture_file("gpqa.csv")).expect("write");
    zip.finish().expect("zip").into_inner()
}

const BO_ICL: &str =
    "https://raw.githubusercontent.com/ur-whitelab/BO-ICL/refs/heads/main/paper/dataset/data";

const HABERMAS: &str = "https://storage.googleapis.com/habermas_machine/datasets";

/// The held-out sources the recipes read, served as the hub and the files'
/// hosts would.
fn hub() -> FakeHub {
    let hub = FakeHub::start();
    hub.dataset(
        "tsor13/novacomet",
        "default",
        "train",
        fixture("novacomet_hypothesis"),
    );
    hub.dataset("ucinlp/drop", "default", "validation", fixture("drop"));
    hub.dataset(
        "lmsys/chatbot_arena_conversations",
        "default",
        "train",
        fixture("chatbotarena_prompts"),
    );
    hub.dataset(
        "Anthropic/llm_global_opinions",
        "default",
        "train",
        fixture("globaloqa"),
    );
    hub.public_file(
        "https://raw.githubusercontent.com/jfisher52/AI_Pluralistic_Alignment/main/data/mpi_questions.csv",
        fixture_file("joins/mpi_questions.csv"),
    );
    hub.public_file(
        "https://github.com/idavidrein/gpqa/raw/main/dataset.zip",
        gpqa_zip(),
    );
    hub.public_file(
        &format!("{BO_ICL}/esol_iupac.csv"),
        fixture_file("chemistry_esol.csv"),
    );
    hub.public_file(
        &format!("{BO_ICL}/train_data_num_feats.csv"),
        fixture_file("chemistry_oxidative.csv"),
    );
    // The word lists of the diverse-valid tasks, as the probe files of
    // scripts/record_diverse_valid.py.
    for (url, file) in [
        (
            "https://raw.githubusercontent.com/meodai/color-names/main/src/colornames.csv",
            "colornames.csv",
        ),
        (
            "https://raw.githubusercontent.com/gutfeeling/word_forms/master/word_forms/en-verbs.txt",
            "en-verbs.txt",
        ),
        (
            "https://raw.githubusercontent.com/andrejewski/periodic-table/master/data.csv",
            "periodic_table_elements.csv",
        ),
    ] {
        hub.public_file(url, fixture_file(&format!("../word_lists/{file}")));
    }
    // The car lists: one file per model year, two of them with rows.
    for year in 1992..=2026 {
        let probe = format!("../word_lists/us-car-models-data/{year}.csv");
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/spectrum-suite/tests/fixtures/paper")
            .join(&probe);
        let file = if path.is_file() {
            fixture_file(&probe)
        } else {
            b"year,make,model,body_styles\n".to_vec()
        };
        hub.public_file(
            &format!(
                "https://raw.githubusercontent.com/abhionlyone/us-car-models-data/master/{year}.csv"
            ),
            file,
        );
    }
    hub.public_file(
        "https://raw.githubusercontent.com/nicolemeister/benchmarking-distributional-alignment/main/nytimes/NYTIMES_proportions.json",
        fixture_file("nytimes.json"),
    );
    hub.public_file(
        &format!("{HABERMAS}/hm_all_position_statement_ratings.parquet"),
        fixture("habermas_individual"),
    );
    hub.public_file(
        &format!("{HABERMAS}/hm_all_round_survey_responses.parquet"),
        fixture_file("joins/hm_all_round_survey_responses.parquet"),
    );
    hub.dataset("cais/mmlu", "all", "test", fixture("mmlu"));
    hub.dataset("allenai/ai2_arc", "ARC-Challenge", "test", fixture("arc"));
    hub.dataset(
        "Rowan/hellaswag",
        "default",
        "validation",
        fixture("hellaswag"),
    );
    hub.dataset(
        "allenai/winogrande",
        "winogrande_xl",
        "validation",
        fixture("winogrande"),
    );
    hub.dataset(
        "EleutherAI/truthful_qa_mc",
        "multiple_choice",
        "validation",
        fixture("truthful_qa"),
    );
    hub
}

fn run(sb: &Sandbox, hub: &FakeHub, args: &[&str]) -> Output {
    sb.command(args)
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("SPECTRUM_SOURCE_MIRROR", hub.mirror())
        .env("HF_HOME", sb.path("hf"))
        .env_remove("HF_TOKEN")
        .output()
        .expect("run spectrum")
}

fn json(sb: &Sandbox, hub: &FakeHub, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = run(sb, hub, &full);
    assert!(
        out.status.success(),
        "spectrum {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn status_of(list: &serde_json::Value, task: &str) -> String {
    list.as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["name"] == task)
        .unwrap_or_else(|| panic!("{task} listed"))["status"]
        .as_str()
        .expect("status")
        .to_string()
}

#[test]
fn the_list_names_every_task_and_what_it_needs() {
    let (sb, hub) = (Sandbox::default(), hub());
    let list = json(&sb, &hub, &["suite", "list"]);
    let tasks = list.as_array().expect("tasks");
    let count = |suite: &str| tasks.iter().filter(|t| t["suite"] == suite).count();
    assert_eq!(
        (
            count("held_out"),
            count("distributional"),
            count("diverse_valid")
        ),
        (22, 8, 22)
    );
    assert_eq!(status_of(&list, "mmlu"), "needs_download");
    assert_eq!(status_of(&list, "chatbotarena_prompts"), "needs_terms");
    assert_eq!(status_of(&list, "wvs_individual"), "needs_file");
    assert_eq!(status_of(&list, "car_brand"), "needs_download");
    assert_eq!(status_of(&list, "element_symbols"), "needs_download");
    assert_eq!(status_of(&list, "flight"), "needs_download");
    assert_eq!(status_of(&list, "urn"), "needs_download");
    assert_eq!(status_of(&list, "us_phone_numbers"), "unusable");
    let wvs = tasks
        .iter()
        .find(|t| t["name"] == "wvs_individual")
        .expect("wvs");
    assert!(
        wvs["detail"]
            .as_str()
            .expect("detail")
            .contains("worldvaluessurvey.org"),
        "{wvs}"
    );
    // Listing reads nothing from the network.
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
}

#[test]
fn fetch_downloads_resumes_reuses_and_imports_then_eval_runs() {
    let sb = Sandbox::with_suite_and_tiny_model(4);
    let hub = hub();
    // The connection drops halfway through the first file: nothing is
    // imported and only a .part is left; the next run continues it.
    hub.cut_next_transfer(fixture("mmlu").len() / 2);
    let cut = run(&sb, &hub, &["suite", "fetch", "--tasks", "mmlu"]);
    let stderr = String::from_utf8_lossy(&cut.stderr);
    let stdout = String::from_utf8_lossy(&cut.stdout);
    assert!(
        stdout.contains("run the same command again")
            || stderr.contains("run the same command again"),
        "{stdout}\n{stderr}"
    );
    let cache = sb.path("hf/spectrum/datasets/cais--mmlu/all/test");
    assert!(cache.join("0000.parquet.part").is_file());
    assert!(
        !cache.join("0000.parquet").exists(),
        "nothing half-written under its name"
    );
    let fetched = json(&sb, &hub, &["suite", "fetch", "--tasks", "mmlu"]);
    assert_eq!(fetched["built"][0][0], "mmlu");
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.contains("/files/cais/mmlu") && r.contains("from byte")),
        "resumed with a range request: {:?}",
        hub.requests()
    );
    assert_eq!(
        std::fs::read(cache.join("0000.parquet")).expect("cached"),
        fixture("mmlu")
    );

    // Everything that can be built; mmlu comes from the cache.
    let before = hub.file_requests.load(Ordering::SeqCst);
    let all = json(&sb, &hub, &["suite", "fetch"]);
    let built: Vec<&str> = all["built"]
        .as_array()
        .expect("built")
        .iter()
        .map(|b| b[0].as_str().expect("name"))
        .collect();
    for task in [
        "mmlu",
        "arc",
        "hellaswag",
        "winogrande",
        "truthful_qa",
        "novacomet_hypothesis",
        "novacomet_premise",
        "drop",
        "chemistry_esol",
        "chemistry_oxidative",
        "gpqa",
        "globaloqa",
        "chatbotarena_prompts",
        "chatbotarena_individual_prefs",
        "chatbotarena_assistant",
        "habermas_question",
        "habermas_individual",
        "habermas_individual_categorical",
        "habermas",
        "global_oqa",
        "states",
        "urn",
        "nytimes",
        "flight",
        "weekdays_full",
        "rng_1_10",
        "color_normal_ex",
        "color_interesting_ex",
        "claude_gerunds",
        "element_names",
        "element_symbols",
        "car_brand",
        "car_make_model",
    ] {
        assert!(built.contains(&task), "{task} built: {built:?}");
    }
    assert_eq!(
        hub.file_requests.load(Ordering::SeqCst) - before,
        17 + 35,
        "fourteen new sources (novacomet's serves two tasks, habermas's two three), three word-list files and the 35 car files, mmlu cached"
    );
    assert!(
        sb.path("hf/spectrum/files/raw.githubusercontent.com/ur-whitelab/BO-ICL/refs/heads/main/paper/dataset/data/esol_iupac.csv")
            .is_file(),
        "a public file is cached under HF_HOME/spectrum/files"
    );
    let missing = all["missing"].as_array().expect("missing");
    assert!(
        missing.iter().any(|m| m[0] == "wvs_individual"
            && m[1]
                .as_str()
                .is_some_and(|r| r.contains("worldvaluessurvey.org"))),
        "{missing:?}"
    );
    // The number game's file is requested from its authors: named, with
    // where to get it and where it was looked for.
    let numbergame = missing
        .iter()
        .find(|m| m[0] == "numbergame_perc")
        .unwrap_or_else(|| panic!("numbergame_perc missing: {missing:?}"))[1]
        .as_str()
        .expect("reason")
        .to_string();
    assert!(
        numbergame.contains("numbergame/numbergame_data.csv")
            && numbergame.contains("--data-dir")
            && numbergame.contains("dataverse.harvard.edu"),
        "{numbergame}"
    );

    // Given in --data-dir, it builds.
    let data = sb.path("data");
    std::fs::create_dir_all(data.join("numbergame")).expect("data dir");
    std::fs::write(
        data.join("numbergame/numbergame_data.csv"),
        fixture_file("numbergame_perc.csv"),
    )
    .expect("write the file");
    let data_arg = data.to_str().expect("utf-8 path");
    let list = json(&sb, &hub, &["suite", "list", "--data-dir", data_arg]);
    assert_eq!(status_of(&list, "numbergame_individual"), "downloaded");
    let given = json(
        &sb,
        &hub,
        &[
            "suite",
            "fetch",
            "--tasks",
            "numbergame_perc,numbergame_individual",
            "--data-dir",
            data_arg,
        ],
    );
    assert_eq!(
        given["built"].as_array().expect("built").len(),
        2,
        "{given}"
    );
    // The World Values Survey's SPSS file, given by hand: a broken one is
    // named, then the real one gives one sequence per respondent.
    let sav = data.join("wvs/WVS_Cross-National_Wave_7_inverted_sav_v6_0.sav");
    std::fs::create_dir_all(data.join("wvs")).expect("data dir");
    std::fs::write(&sav, b"respondent,Q1\n1,2\n").expect("write the file");
    let wvs_args = [
        "suite",
        "fetch",
        "--tasks",
        "wvs_individual",
        "--data-dir",
        data_arg,
    ];
    let broken = json(&sb, &hub, &wvs_args);
    let reason = broken["missing"][0][1].as_str().unwrap_or_default();
    assert!(
        reason.contains("WVS_Cross-National_Wave_7_inverted_sav_v6_0.sav")
            && reason.contains("not a readable SPSS system file"),
        "{broken}"
    );
    std::fs::write(&sav, fixture_file("wvs_individual.sav")).expect("write the file");
    let wvs = json(&sb, &hub, &wvs_args);
    assert_eq!(
        wvs["built"][0],
        serde_json::json!(["wvs_individual", 12]),
        "{wvs}"
    );
    // The distributional number game reads the same file (groups of nine
    // answers or more).
    std::fs::write(
        data.join("numbergame/numbergame_data.csv"),
        fixture_file("numbergame.csv"),
    )
    .expect("write the file");
    let dist = json(
        &sb,
        &hub,
        &[
            "suite",
            "fetch",
            "--tasks",
            "numbergame",
            "--data-dir",
            data_arg,
        ],
    );
    assert_eq!(
        dist["built"][0],
        serde_json::json!(["numbergame", 2]),
        "{dist}"
    );
    // MPI: the responses by hand, the questions from their repository.
    std::fs::create_dir_all(data.join("mpi")).expect("data dir");
    std::fs::write(data.join("mpi/mpi_human_resp.csv"), fixture_file("mpi.csv"))
        .expect("write the file");
    let mpi = json(
        &sb,
        &hub,
        &["suite", "fetch", "--tasks", "mpi", "--data-dir", data_arg],
    );
    // Five items; the one with an answer outside 0..5 sums to 0.75 and is left out.
    assert_eq!(mpi["built"][0], serde_json::json!(["mpi", 4]), "{mpi}");
    assert_eq!(all["dataset"]["name"], "spectrum-paper");
    let list = json(&sb, &hub, &["suite", "list"]);
    assert_eq!(status_of(&list, "arc"), "imported");

    // The imported tasks evaluate end to end (arc and the others have too few
    // fixture rows for ten sequences; mmlu draws 200 from its five).
    let report = json(
        &sb,
        &hub,
        &[
            "eval",
            "--model",
            "tiny",
            "--tasks",
            "mmlu,wvs_individual,weekdays_full,rng_1_10,element_symbols,numbergame",
            "--family",
            "steer,valid,dist",
            "--budget",
            "4096",
            "--max-sequences",
            "10",
            "--samples",
            "4",
            "--temperatures",
            "1",
            "--max-new-tokens",
            "4",
        ],
    );
    let steer: Vec<&str> = report["steer"]["tasks"]
        .as_array()
        .expect("steer")
        .iter()
        .map(|t| t["task"].as_str().expect("task"))
        .collect();
    assert_eq!(steer, ["mmlu", "wvs_individual"], "{report}");
    let valid = report["valid"]["tasks"].as_array().expect("valid");
    assert_eq!(valid.len(), 3, "{valid:?}");
    assert_eq!(report["dist"]["tasks"][0]["task"], "numbergame", "{report}");
}

#[test]
fn a_gated_dataset_and_a_changed_schema_are_named() {
    let sb = Sandbox::default();
    let hub = hub();
    hub.gate("cais/mmlu");
    // ARC's source now lacks the column the recipe reads.
    hub.dataset(
        "allenai/ai2_arc",
        "ARC-Challenge",
        "test",
        fixture("winogrande"),
    );
    let out = json(&sb, &hub, &["suite", "fetch", "--tasks", "mmlu,arc"]);
    let reason = |task: &str| -> String {
        out["missing"]
            .as_array()
            .expect("missing")
            .iter()
            .find(|m| m[0] == task)
            .unwrap_or_else(|| panic!("{task} missing: {out}"))[1]
            .as_str()
            .expect("reason")
            .to_string()
    };
    let gated = reason("mmlu");
    assert!(
        gated.contains("https://huggingface.co/datasets/cais/mmlu") && gated.contains("HF_TOKEN"),
        "{gated}"
    );
    let schema = reason("arc");
    assert!(schema.contains("no column \"question\""), "{schema}");
    assert!(out["dataset"].is_null(), "nothing built, nothing imported");
    let unknown = run(&sb, &hub, &["suite", "fetch", "--tasks", "no_such_task"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("spectrum suite list"));
}
