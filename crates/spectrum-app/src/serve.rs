//! `spectrum serve`: registered models over the OpenAI-compatible API.

use std::net::SocketAddr;

use anyhow::Result;
use spectrum_core::Problem;
use spectrum_lm::DeviceSpec;
use spectrum_lm::hf::ModelDir;
use spectrum_openai::{ServeOptions, ServedModel, Server};

use crate::{ModelSource, Studio};

/// A running server and the names it serves models under.
#[derive(Debug)]
pub struct Serving {
    pub server: Server,
    pub models: Vec<String>,
}

impl Serving {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops accepting, finishes the requests in flight, ends the workers.
    pub fn stop(self) -> Result<()> {
        Ok(self.server.stop()?)
    }
}

impl Studio {
    /// Loads each model (base, tuned or adapter folder: adapters are merged at
    /// load) and serves them under their registry names.
    pub fn serve(
        &self,
        models: &[ModelSource],
        device: DeviceSpec,
        options: &ServeOptions,
        note: &mut dyn FnMut(&str),
    ) -> Result<Serving> {
        let mut served = Vec::new();
        for spec in models {
            let path = self.resolve_model(spec, note)?;
            crate::models::require_weights(&path)?;
            let name = self
                .store()?
                .models()?
                .into_iter()
                .find(|m| std::path::Path::new(&m.path) == path)
                .map_or_else(|| spec.to_string(), |m| m.name);
            if served.iter().any(|s: &ServedModel| s.name == name) {
                return Err(Problem::setting(
                    format!("{name:?} is named twice"),
                    "model",
                    "each model once",
                )
                .into());
            }
            note(&format!("loading {name} from {}", path.display()));
            let model = spectrum_lm::load_local(&path, device)?;
            // An adapter folder's tokenizer files are its base model's.
            let dir = ModelDir::open(&path)?.dir;
            served.push(ServedModel { name, dir, model });
        }
        let names = served.iter().map(|s| s.name.clone()).collect();
        Ok(Serving {
            server: Server::start(served, options)?,
            models: names,
        })
    }
}
