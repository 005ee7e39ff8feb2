//! A local server that answers like the Hugging Face hub for datasets: the
//! Parquet listing (`/api/datasets/REPO/parquet/CONFIG/SPLIT`) and the files
//! it names, with range requests; gated datasets refuse with 401. It also
//! mirrors public files under `/mirror/HOST/PATH` (what
//! `SPECTRUM_SOURCE_MIRROR` points at). Tests point `HF_ENDPOINT` at it, so no
//! test reaches the network.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The server's state, shared with its thread.
#[derive(Debug, Default)]
struct State {
    /// "repo/config/split" -> the Parquet files' bytes.
    files: HashMap<String, Vec<Vec<u8>>>,
    /// "host/path" -> a public file's bytes.
    mirrored: HashMap<String, Vec<u8>>,
    gated: Vec<String>,
    /// Cut the connection of the next file transfer after this many bytes.
    cut_after: Option<usize>,
    /// Every request line seen.
    requests: Vec<String>,
}

/// A running fake hub; it stops with the test process.
#[derive(Debug, Clone)]
pub struct FakeHub {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    pub file_requests: Arc<AtomicUsize>,
}

impl FakeHub {
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let hub = FakeHub {
            endpoint,
            state: Arc::default(),
            file_requests: Arc::default(),
        };
        let served = hub.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let hub = served.clone();
                std::thread::spawn(move || hub.answer(stream));
            }
        });
        hub
    }

    /// Serves `file` as the only Parquet file of `repo`'s `config`/`split`.
    pub fn dataset(&self, repo: &str, config: &str, split: &str, file: Vec<u8>) {
        let mut s = self.state.lock().expect("state");
        s.files
            .insert(format!("{repo}/{config}/{split}"), vec![file]);
    }

    /// Serves `file` as the public file at `url` (through the mirror).
    pub fn public_file(&self, url: &str, file: Vec<u8>) {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        self.state
            .lock()
            .expect("state")
            .mirrored
            .insert(rest.to_string(), file);
    }

    /// What `SPECTRUM_SOURCE_MIRROR` is set to.
    pub fn mirror(&self) -> String {
        format!("{}/mirror", self.endpoint)
    }

    pub fn gate(&self, repo: &str) {
        self.state
            .lock()
            .expect("state")
            .gated
            .push(repo.to_string());
    }

    /// The next file transfer stops after `bytes` bytes (a cut connection).
    pub fn cut_next_transfer(&self, bytes: usize) {
        self.state.lock().expect("state").cut_after = Some(bytes);
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("state").requests.clone()
    }

    fn answer(&self, mut stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut range_from = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("range: bytes=") {
                range_from = v.trim().trim_end_matches('-').parse::<usize>().ok();
            }
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut state = self.state.lock().expect("state");
        state.requests.push(match range_from {
            Some(from) => format!("{} (from byte {from})", line.trim()),
            None => line.trim().to_string(),
        });
        let repo_of = |rest: &str| rest.splitn(3, '/').take(2).collect::<Vec<_>>().join("/");
        if let Some(rest) = path.strip_prefix("/api/datasets/") {
            let Some((repo_part, tail)) = rest.split_once("/parquet/") else {
                return respond(
                    &mut stream,
                    "404 Not Found",
                    "text/plain",
                    b"no such route",
                    None,
                );
            };
            if state.gated.iter().any(|g| g == repo_part) {
                return respond(
                    &mut stream,
                    "401 Unauthorized",
                    "application/json",
                    br#"{"error":"gated"}"#,
                    None,
                );
            }
            let key = format!("{repo_part}/{tail}");
            let Some(files) = state.files.get(&key) else {
                return respond(
                    &mut stream,
                    "404 Not Found",
                    "application/json",
                    br#"{"error":"not found"}"#,
                    None,
                );
            };
            let urls: Vec<String> = (0..files.len())
                .map(|i| format!("{}/files/{key}/{i}.parquet", self.endpoint))
                .collect();
            let body = serde_json::to_vec(&urls).expect("json");
            return respond(&mut stream, "200 OK", "application/json", &body, None);
        }
        let file = if let Some(rest) = path.strip_prefix("/files/") {
            self.file_requests.fetch_add(1, Ordering::SeqCst);
            if state.gated.iter().any(|g| *g == repo_of(rest)) {
                return respond(&mut stream, "403 Forbidden", "text/plain", b"gated", None);
            }
            let (key, index) = rest.rsplit_once('/').unwrap_or((rest, ""));
            let index: usize = index
                .trim_end_matches(".parquet")
                .parse()
                .unwrap_or(usize::MAX);
            state.files.get(key).and_then(|f| f.get(index)).cloned()
        } else if let Some(rest) = path.strip_prefix("/mirror/") {
            self.file_requests.fetch_add(1, Ordering::SeqCst);
            state.mirrored.get(rest).cloned()
        } else {
            None
        };
        let Some(file) = file else {
            return respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"no such file",
                None,
            );
        };
        let cut = state.cut_after.take();
        drop(state);
        let from = range_from.unwrap_or(0).min(file.len());
        let status = if range_from.is_some() {
            "206 Partial Content"
        } else {
            "200 OK"
        };
        let body = &file[from..];
        match cut {
            Some(n) => {
                // Announce the whole length, send part of it, hang up.
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body[..n.min(body.len())]);
                let _ = stream.flush();
            }
            None => respond(
                &mut stream,
                status,
                "application/octet-stream",
                body,
                Some(from),
            ),
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8], _from: Option<usize>) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
    let mut sink = [0u8; 1];
    let _ = stream.read(&mut sink);
}
