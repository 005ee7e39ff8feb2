//! Downloads of source data: resumable (a `.part` file continued with an HTTP
//! range request), checked against the size the server announces, and never
//! half-written (the file appears under its name only once complete, so a
//! Ctrl-C or a kill -9 leaves at most a `.part` that the next run continues).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a download did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(
        "{url}: access refused ({status}): the dataset is gated. Accept its terms at {page} while signed in, then set HF_TOKEN to a token of that account (https://huggingface.co/settings/tokens)"
    )]
    Gated {
        url: String,
        status: u16,
        page: String,
    },
    #[error("{url}: not found (404); the dataset, its config or its split may have been renamed")]
    NotFound { url: String },
    #[error("{url}: the server answered {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url}: {message}; run the same command again to continue where it stopped (HF_ENDPOINT sets another hub)"
    )]
    Network { url: String, message: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("the download was cancelled; run the same command again to continue")]
    Cancelled,
    #[error(
        "needs the file {path} under --data-dir DIR ({looked}); it cannot be downloaded: get it from {from}"
    )]
    Manual {
        path: String,
        from: String,
        looked: String,
    },
    #[error(
        "{url}: the download ended at {got} bytes of {want}; run the same command again to continue"
    )]
    Short { url: String, got: u64, want: u64 },
}

/// A client with the Hugging Face token, if any.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    token: Option<String>,
}

impl Client {
    /// A client with `HF_TOKEN` (or the token `huggingface-cli login` saved
    /// under `HF_HOME`).
    pub fn from_env() -> Client {
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                std::fs::read_to_string(hf_home().join("token"))
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(std::time::Duration::from_secs(20))
                .timeout_read(std::time::Duration::from_secs(60))
                .build(),
            token,
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn get(&self, url: &str) -> ureq::Request {
        let request = self.agent.get(url);
        match &self.token {
            Some(t) => request.set("Authorization", &format!("Bearer {t}")),
            None => request,
        }
    }

    /// The JSON `url` answers; `page` is named if access is refused.
    pub fn json(&self, url: &str, page: &str) -> Result<serde_json::Value, DownloadError> {
        let response = self.call(self.get(url), url, page)?;
        response.into_json().map_err(|e| DownloadError::Network {
            url: url.to_string(),
            message: format!("the answer is not JSON: {e}"),
        })
    }

    fn call(
        &self,
        request: ureq::Request,
        url: &str,
        page: &str,
    ) -> Result<ureq::Response, DownloadError> {
        match request.call() {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status @ (401 | 403), _)) => Err(DownloadError::Gated {
                url: url.to_string(),
                status,
                page: page.to_string(),
            }),
            Err(ureq::Error::Status(404, _)) => Err(DownloadError::NotFound {
                url: url.to_string(),
            }),
            Err(ureq::Error::Status(status, r)) => Err(DownloadError::Http {
                url: url.to_string(),
                status,
                body: r
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect(),
            }),
            Err(e) => Err(DownloadError::Network {
                url: url.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Downloads `url` to `dest` unless it is there already; continues a
    /// `.part` left by an interrupted run. `progress(done, total)` in bytes.
    pub fn file(
        &self,
        url: &str,
        dest: &Path,
        page: &str,
        progress: &mut dyn FnMut(u64, Option<u64>),
        cancel: &AtomicBool,
    ) -> Result<(), DownloadError> {
        if dest.is_file() {
            return Ok(());
        }
        let file_error = |path: &Path, e: std::io::Error| DownloadError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        }
        let part = part_path(dest);
        let have = std::fs::metadata(&part).map_or(0, |m| m.len());
        let mut request = self.get(url);
        if have > 0 {
            request = request.set("Range", &format!("bytes={have}-"));
        }
        let response = match self.call(request, url, page) {
            // The part is complete already, or the server moved on: start over.
            Err(DownloadError::Http { status: 416, .. }) => {
                std::fs::remove_file(&part).map_err(|e| file_error(&part, e))?;
                return self.file(url, dest, page, progress, cancel);
            }
            other => other?,
        };
        let resumed = response.status() == 206;
        let length: Option<u64> = response
            .header("Content-Length")
            .and_then(|v| v.parse().ok());
        let start = if resumed { have } else { 0 };
        let total = length.map(|l| l + start);
        let mut out = if resumed {
            OpenOptions::new().append(true).open(&part)
        } else {
            File::create(&part)
        }
        .map_err(|e| file_error(&part, e))?;
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut done = start;
        progress(done, total);
        loop {
            if cancel.load(Ordering::Relaxed) {
                out.flush().map_err(|e| file_error(&part, e))?;
                return Err(DownloadError::Cancelled);
            }
            let n = reader.read(&mut buf).map_err(|e| DownloadError::Network {
                url: url.to_string(),
                message: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| file_error(&part, e))?;
            done += n as u64;
            progress(done, total);
        }
        out.sync_all().map_err(|e| file_error(&part, e))?;
        drop(out);
        if let Some(want) = total
            && done != want
        {
            return Err(DownloadError::Short {
                url: url.to_string(),
                got: done,
                want,
            });
        }
        std::fs::rename(&part, dest).map_err(|e| file_error(dest, e))
    }
}

/// Where an unfinished download of `dest` is kept.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// `HF_HOME`, or `~/.cache/huggingface` as the hub's own tools use.
pub fn hf_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface")
}

/// `HF_ENDPOINT`, or the hub.
pub fn hf_endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "https://huggingface.co".into())
}

/// The address a public file is fetched from: its own, or under
/// `SPECTRUM_SOURCE_MIRROR` (`https://host/path` becomes `MIRROR/host/path`)
/// for machines that reach the internet only through a mirror.
pub fn source_url(url: &str) -> String {
    match std::env::var("SPECTRUM_SOURCE_MIRROR")
        .ok()
        .filter(|m| !m.trim().is_empty())
    {
        Some(mirror) => {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            format!("{}/{rest}", mirror.trim_end_matches('/'))
        }
        None => url.to_string(),
    }
}

/// Where a public file is cached: `HF_HOME/spectrum/files/HOST/PATH`, every
/// character outside `[A-Za-z0-9._-]` of each segment replaced by `_`.
pub fn url_cache_path(url: &str) -> PathBuf {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let mut path = hf_home().join("spectrum").join("files");
    for segment in rest
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
    {
        let clean: String = segment
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        path.push(clean);
    }
    path
}
