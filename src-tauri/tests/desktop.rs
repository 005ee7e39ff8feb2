//! The real app, driven through WebDriver (tauri-driver -> WebKitWebDriver)
//! under a private Xvfb display: import the built-in suite through the drop
//! path (the tour), train a tiny model and watch the live chart, evaluate the
//! base and tuned models, open every results view, export a PDF; and close
//! the window mid-training (as a window manager asks), reopen it, resume,
//! and end it with SIGTERM. Screenshots of each view land in
//! `target/screenshots/desktop*/`.
//!
//! Needs Xvfb, WebKitWebDriver (Debian: xvfb, webkit2gtk-driver) and
//! tauri-driver (`cargo install tauri-driver --locked`); `.ci/run` installs them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Kills a helper process and everything it started (tauri-driver starts
/// WebKitWebDriver, which would otherwise outlive the test holding its
/// stderr open) when the test ends, however it ends.
struct Guard(Child);

impl Guard {
    fn spawn(command: &mut Command, what: &str) -> Guard {
        use std::os::unix::process::CommandExt;
        Guard(
            command
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}")),
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str, fix: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (fix: {fix}); .ci/run installs it"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A minimal W3C WebDriver client over HTTP.
struct Driver {
    base: String,
    shots: PathBuf,
}

impl Driver {
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(120));
        let response = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match response {
            Ok(r) => r.into_json::<Value>().expect("JSON from the driver")["value"].take(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{method} {path}: HTTP {code}: {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// Ends the session (closes the app if it still runs); errors are fine.
    fn quit(&self) {
        let _ = ureq::delete(&self.base)
            .timeout(Duration::from_secs(30))
            .call();
    }

    fn find(&self, css: &str) -> Option<String> {
        let url = format!("{}/element", self.base);
        let r = ureq::post(&url)
            .timeout(Duration::from_secs(30))
            .send_json(json!({"using": "css selector", "value": css}));
        match r {
            Ok(r) => r.into_json::<Value>().ok()?["value"][ELEMENT]
                .as_str()
                .map(String::from),
            Err(_) => None,
        }
    }

    /// Waits until `css` matches an element (and `ready` holds for it).
    fn wait(&self, css: &str, secs: u64, ready: impl Fn(&Driver, &str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(id) = self.find(css)
                && ready(self, &id)
            {
                return id;
            }
            if Instant::now() > deadline {
                self.screenshot("timeout");
                panic!(
                    "{css} did not appear within {secs} s; page text:\n{}",
                    self.text("body")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn present(&self, css: &str, secs: u64) -> String {
        self.wait(css, secs, |_, _| true)
    }

    fn click(&self, css: &str) {
        let id = self.wait(css, 60, |d, id| {
            d.request("GET", &format!("/element/{id}/enabled"), None) == json!(true)
        });
        self.request("POST", &format!("/element/{id}/click"), Some(json!({})));
        std::thread::sleep(Duration::from_millis(300));
    }

    fn attr(&self, id: &str, name: &str) -> Option<String> {
        self.request("GET", &format!("/element/{id}/attribute/{name}"), None)
            .as_str()
            .map(String::from)
    }

    fn text(&self, css: &str) -> String {
        match self.find(css) {
            Some(id) => self
                .request("GET", &format!("/element/{id}/text"), None)
                .as_str()
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        }
    }

    fn set(&self, css: &str, value: &str) {
        let id = self.present(css, 30);
        self.request("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.request(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": value })),
        );
    }

    fn points(&self, css: &str) -> usize {
        self.find(css)
            .and_then(|id| self.attr(&id, "data-points"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Opens a Results tab and waits until its chart has data points.
    fn tab(&self, tab: &str, chart: &str) {
        self.click(&format!("[data-testid=tab-{tab}]"));
        let css = format!("[data-testid={chart}]");
        self.wait(&css, 60, |d, _| d.points(&css) > 0);
    }

    fn screenshot(&self, name: &str) {
        std::thread::sleep(Duration::from_millis(800));
        let b64 = self.request("GET", "/screenshot", None);
        let png = decode_base64(b64.as_str().unwrap_or_default());
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = s.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | d << (18 - 6 * i));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

/// Xvfb and tauri-driver for one test, and the store the app opens.
struct Desktop {
    dir: tempfile::TempDir,
    display: String,
    root: String,
    shots: PathBuf,
    // Dropped last: the driver (and the app) before the display.
    _driver: Guard,
    _xvfb: Guard,
}

impl Desktop {
    /// A store with the tiny model registered as `tiny`.
    fn start(name: &str) -> Desktop {
        let xvfb = tool("Xvfb", "apt-get install xvfb");
        let webkit = tool("WebKitWebDriver", "apt-get install webkit2gtk-driver");
        let tauri_driver = tool("tauri-driver", "cargo install tauri-driver --locked");

        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store.sqlite3");
        let tiny = dir.path().join("tiny");
        spectrum_lm::tiny::write_model(&tiny, 32, 2, 3).expect("tiny model");
        spectrum_app::Studio::new(Some(store.clone()))
            .expect("studio")
            .add_model(
                &spectrum_app::AddModelRequest::new(
                    spectrum_app::ModelSource::Folder { path: tiny.clone() },
                    Some("tiny"),
                ),
                &mut |_| {},
            )
            .expect("register the tiny model");

        let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/screenshots")
            .join(name);
        std::fs::create_dir_all(&shots).expect("screenshot folder");

        // A display of our own: tests run in parallel.
        let display = loop {
            let n = 100 + free_port() % 20000;
            if !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                break format!(":{n}");
            }
        };
        let xvfb = Guard::spawn(
            Command::new(xvfb)
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "1440x900x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "Xvfb",
        );
        std::thread::sleep(Duration::from_millis(800));

        let port = free_port();
        let native = free_port();
        let driver = Guard::spawn(
            Command::new(tauri_driver)
                .args([
                    "--port",
                    &port.to_string(),
                    "--native-port",
                    &native.to_string(),
                    "--native-driver",
                ])
                .arg(webkit)
                .env("DISPLAY", &display)
                .env("SPECTRUM_STORE", &store)
                .env_remove("WAYLAND_DISPLAY")
                .stdout(Stdio::null()),
            "tauri-driver",
        );
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{root}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        Desktop {
            dir,
            display,
            root,
            shots,
            _driver: driver,
            _xvfb: xvfb,
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store.sqlite3")
    }

    fn studio(&self) -> spectrum_app::Studio {
        spectrum_app::Studio::new(Some(self.store())).expect("studio")
    }

    /// Starts the app in a new WebDriver session.
    fn open(&self) -> Driver {
        let app = PathBuf::from(env!("CARGO_BIN_EXE_spectrum-studio"));
        let session = ureq::post(&format!("{}/session", self.root))
            .timeout(Duration::from_secs(120))
            .send_json(
                json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": app}}}}),
            )
            .expect("a WebDriver session")
            .into_json::<Value>()
            .expect("session JSON");
        let sid = session["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Driver {
            base: format!("{}/session/{sid}", self.root),
            shots: self.shots.clone(),
        }
    }

    /// Asks the app's window to close, as a window manager does when the user
    /// clicks its close button (a WM_DELETE_WINDOW client message).
    fn close_window(&self) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{
            AtomEnum, ClientMessageEvent, ConnectionExt, EventMask, Window,
        };

        let (conn, screen) = x11rb::connect(Some(&self.display)).expect("connect to Xvfb");
        let root = conn.setup().roots[screen].root;
        // GTK names more than one window (the client leader too): ask each.
        let mut todo: Vec<Window> = vec![root];
        let mut named = Vec::new();
        while let Some(w) = todo.pop() {
            let name = conn
                .get_property(false, w, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 256)
                .expect("request")
                .reply();
            if name.is_ok_and(|n| n.value == b"Spectrum Studio") {
                named.push(w);
            }
            todo.extend(
                conn.query_tree(w)
                    .expect("request")
                    .reply()
                    .expect("tree")
                    .children,
            );
        }
        assert!(!named.is_empty(), "no Spectrum Studio window");
        let atom = |name: &[u8]| {
            conn.intern_atom(false, name)
                .expect("request")
                .reply()
                .expect("atom")
                .atom
        };
        let (protocols, delete) = (atom(b"WM_PROTOCOLS"), atom(b"WM_DELETE_WINDOW"));
        for window in named {
            let event = ClientMessageEvent::new(32, window, protocols, [delete, 0, 0, 0, 0]);
            conn.send_event(false, window, EventMask::NO_EVENT, event)
                .expect("send WM_DELETE_WINDOW");
        }
        conn.flush().expect("flush");
    }

    /// Waits until no app process of this test is left.
    fn wait_exit(&self, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.app_pids().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the app still runs 60 s after {why}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The pids of app processes with this test's store.
    fn app_pids(&self) -> Vec<String> {
        let needle = format!("SPECTRUM_STORE={}", self.store().display());
        std::fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        std::fs::read(e.path().join("environ")).is_ok_and(|env| {
                            env.split(|b| *b == 0).any(|var| var == needle.as_bytes())
                        }) && std::fs::read_link(e.path().join("exe"))
                            .is_ok_and(|exe| exe.ends_with("spectrum-studio"))
                    })
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One app at a time: each test runs an app, WebKit and Xvfb, and on 2 cores
/// two of them side by side slowed a cancel past the close test's 60 s.
static ONE_APP: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_whole_workflow_in_the_desktop_app() {
    let _one = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start("desktop");
    let dir = &desktop.dir;
    let d = desktop.open();

    // Library: the tour offers the whole demo as one job (`Studio::demo`, the
    // CLI's; tested there) and its steps one by one; the first step builds
    // the suite and hands it over like a drop.
    d.present("[data-testid=tour-demo]", 60);
    assert_eq!(d.text("[data-testid=tour-demo]"), "Run the whole demo");
    d.click("[data-testid=tour-start]");
    d.present("[data-testid=preview-counts]", 120);
    assert!(
        d.text("[data-testid=preview-counts]")
            .starts_with("31 tasks"),
        "{}",
        d.text("[data-testid=import-preview]")
    );
    d.screenshot("01-library-preview");
    d.click("[data-testid=import-confirm]");
    d.present("[data-testid=import-done]", 120);
    d.present("[data-testid=datasets]", 30);
    d.screenshot("02-library");
    d.click("ul.tasks li:first-child button");
    d.present(".messages, .bars", 30);
    d.screenshot("02-library-task");

    // Models.
    d.click("[data-testid=nav-models]");
    d.present("[data-testid=models]", 30);
    assert!(d.text("[data-testid=models]").contains("tiny"));
    d.screenshot("03-models");

    // A remote model: a `spectrum serve` server in this process, added with the form.
    let served = dir.path().join("served");
    spectrum_lm::tiny::write_model(&served, 32, 2, 5).expect("served model");
    let server = spectrum_openai::Server::start(
        vec![spectrum_openai::ServedModel {
            name: "served-tiny".into(),
            dir: served.clone(),
            model: spectrum_lm::load_local(&served, spectrum_lm::DeviceSpec::Cpu).expect("load"),
        }],
        &spectrum_openai::ServeOptions {
            port: 0,
            ..Default::default()
        },
    )
    .expect("serve");
    d.click("[data-testid=remote-form] summary");
    d.set(
        "[data-testid=remote-endpoints]",
        &format!("http://{}/v1", server.addr()),
    );
    d.set("[data-testid=remote-model]", "served-tiny");
    d.click("[data-testid=remote-add]");
    d.wait("[data-testid=models]", 60, |d, _| {
        d.text("[data-testid=models]").contains("served-tiny")
    });
    assert!(d.text("[data-testid=models]").contains("remote"));
    d.screenshot("03-models-remote");
    server.stop().expect("stop the server");

    // Train: a few steps; the live chart receives the points.
    d.click("[data-testid=nav-train]");
    d.set("[data-testid=train-steps]", "12");
    d.set("[data-testid=train-eval-every]", "4");
    // Will it fit: the engine's estimate beside the free memory.
    d.wait("[data-testid=train-memory]", 30, |d, _| {
        d.text("[data-testid=train-memory]").contains("free on cpu")
    });
    let memory = d.text("[data-testid=train-memory]");
    assert!(memory.starts_with("Peak memory up to about"), "{memory}");
    d.click("[data-testid=train-start]");
    d.wait("[data-testid=train-chart]", 120, |d, _| {
        d.points("[data-testid=train-chart]") > 0
    });
    d.present("[data-testid=train-outcome]", 300);
    let outcome = d.text("[data-testid=train-outcome]");
    assert!(outcome.starts_with("Finished"), "{outcome}");
    // 12 loss points, 12 learning-rate points, held-out evaluations.
    assert!(d.points("[data-testid=train-chart]") >= 24 + 2);
    d.screenshot("04-train");

    // Evaluate the base and the tuned model (quick profile).
    d.click("[data-testid=nav-evaluate]");
    d.click("[data-testid=eval-model-tiny]");
    let tuned = d.present("[data-testid^=eval-model-tiny-]", 30);
    d.request("POST", &format!("/element/{tuned}/click"), Some(json!({})));
    d.click("[data-testid=eval-start]");
    d.wait("[data-testid=eval-progress]", 600, |d, _| {
        d.text("[data-testid=eval-progress]")
            .matches("Finished")
            .count()
            >= 2
    });
    d.screenshot("05-evaluate");

    // Results: select both evaluation runs and the training run.
    d.click("[data-testid=nav-results]");
    d.present("[data-testid=runs]", 30);
    for id in 1..=3 {
        if let Some(el) = d.find(&format!("[data-testid=select-run-{id}]")) {
            let checked = d.request("GET", &format!("/element/{el}/selected"), None);
            if checked != json!(true) {
                d.request("POST", &format!("/element/{el}/click"), Some(json!({})));
            }
        }
    }
    d.tab("steer", "steer-chart");
    d.screenshot("06-results-steer");
    d.tab("dist", "js-chart");
    d.click("ul.items li:first-child button");
    d.present("[data-testid=item-chart]", 30);
    d.present("[data-testid=item-prompt]", 30);
    // The exact prompt the run scored, from the evaluation's own code.
    d.present("[data-testid=scored-prompt]", 60);
    d.screenshot("07-results-dist");
    d.tab("valid", "valid-chart");
    d.click("[data-testid=results-valid] tbody tr:first-child button.link");
    d.present("[data-testid=sampled-prompt]", 60);
    d.screenshot("08-results-valid");
    d.tab("breakdown", "heatmap-chart");
    d.screenshot("09-results-breakdown");
    d.tab("training", "training-chart");
    // The run's settings, read back typed from the store, under its curves.
    let settings = d.text("[data-testid=training-settings]");
    assert!(
        settings.starts_with("LoRA rank") && settings.contains("learning rate"),
        "{settings}"
    );
    d.screenshot("10-results-training");
    d.click("[data-testid=tab-steer]");
    d.click("button[aria-label='Toggle dark theme']");
    d.screenshot("10-results-dark");
    d.click("button[aria-label='Toggle dark theme']");

    // Report: the selection carries over; export into reports/ beside the store.
    d.click("[data-testid=nav-report]");
    d.click("[data-testid=report-export]");
    d.present("[data-testid=report-done]", 300);
    let written = d.text("[data-testid=report-done]");
    let path = written.trim_start_matches("Wrote ").trim();
    let pdf = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(pdf.starts_with(b"%PDF-"), "{path} is not a PDF");
    assert!(Path::new(path).starts_with(dir.path().join("reports")));
    d.screenshot("11-report");

    // No error was shown on the way.
    assert!(
        d.find("[data-testid=error]").is_none(),
        "{}",
        d.text("[data-testid=error]")
    );
    d.quit();
}

#[test]
fn closing_the_window_cancels_training_and_reopening_offers_resume() {
    let _one = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start("desktop-reopen");
    let studio = desktop.studio();
    let suite = desktop.dir.path().join("suite");
    let config = spectrum_app::SuiteConfig {
        size: 16,
        ..Default::default()
    };
    studio.build_suite(&config, &suite).expect("suite");
    let request = spectrum_app::ImportRequest {
        paths: vec![suite],
        name: None,
        options: spectrum_app::ImportOptions::default(),
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    studio
        .import(&request, &mut |_| {}, &never)
        .expect("import");

    // A long run, closed mid-way.
    let d = desktop.open();
    d.click("[data-testid=nav-train]");
    d.set("[data-testid=train-steps]", "100000");
    d.set("[data-testid=train-eval-every]", "100000");
    d.click("[data-testid=train-start]");
    d.wait("[data-testid=train-chart]", 120, |d, _| {
        d.points("[data-testid=train-chart]") > 10
    });
    d.screenshot("01-training");
    // The user closes the window (asked again every 10 s: an X client message
    // sent while the toolkit is busy can be lost, and a user would click again).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !desktop.app_pids().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the app still runs 60 s after its window was asked to close"
        );
        desktop.close_window();
        let asked = Instant::now();
        while !desktop.app_pids().is_empty() && asked.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let run = studio.runs().expect("runs").remove(0);
    assert_eq!(run.kind, spectrum_app::RunKind::Train);
    assert_eq!(run.status, spectrum_app::RunStatus::Cancelled, "{run:?}");
    assert!(run.step > 0 && run.step < run.total_steps, "{run:?}");
    let detail = studio
        .run_detail(&spectrum_app::RunRef::Id(run.id))
        .expect("detail");
    assert!(!detail.checkpoints.is_empty(), "no checkpoint after cancel");
    d.quit();

    // Reopened: the run is offered for resuming.
    let d = desktop.open();
    let panel = d.present("[data-testid=interrupted]", 30);
    let text = d.text("[data-testid=interrupted]");
    assert!(
        text.contains(&run.name) && text.contains("Resume"),
        "{text} ({panel})"
    );
    d.screenshot("02-reopened");

    // Resumed, then ended as the desktop session does at logout (SIGTERM).
    d.click("[data-testid=interrupted] button");
    d.present("[data-testid=jobs]", 30);
    std::thread::sleep(Duration::from_secs(2));
    let pids = desktop.app_pids();
    assert_eq!(pids.len(), 1, "one app process");
    let status = Command::new("kill")
        .args(["-TERM", &pids[0]])
        .status()
        .expect("kill");
    assert!(status.success());
    desktop.wait_exit("SIGTERM");
    let resumed = studio.runs().expect("runs").remove(0);
    assert_eq!(resumed.id, run.id);
    assert_eq!(
        resumed.status,
        spectrum_app::RunStatus::Cancelled,
        "{resumed:?}"
    );
    assert!(resumed.step >= run.step, "{resumed:?}");
    d.quit();
}
