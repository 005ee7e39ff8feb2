//! Turn tokens a model lacks for the spectrum format (METHOD.md §2): a copy of
//! the model with them added to the tokenizer and with new embedding (and
//! untied LM-head) rows, initialised from an instruct sibling that has the
//! tokens, or else from the mean row. The copy records what was added in
//! `spectrum_added_tokens.json`, so LoRA training trains those rows too.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use spectrum_core::Problem;

use crate::hf::ModelDir;
use crate::tokenizer::TextTokenizer;
use crate::{LmError, Result};

/// The file in a model folder that lists the tokens Spectrum Studio added.
pub const MARKER: &str = "spectrum_added_tokens.json";

/// Files copied unchanged into the extended model (the GGUF blocks too: the
/// layers' still fit, the resized embedding's are found not to and unused).
const SIDE_FILES: [&str; 4] = [
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    crate::blocks::FILE,
];

/// What was added to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedTokens {
    pub tokens: Vec<String>,
    /// Id of the first added token; the others follow it.
    pub first_id: usize,
    /// `mean`, or the instruct sibling whose rows were copied.
    pub init: String,
}

impl AddedTokens {
    pub fn ids(&self) -> Range<usize> {
        self.first_id..self.first_id + self.tokens.len()
    }

    /// The record in `dir`, if the folder is a model with added tokens.
    pub fn read(dir: &Path) -> Result<Option<AddedTokens>> {
        let path = dir.join(MARKER);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| LmError::io(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LmError::bad(&path, format!("not an added-tokens record: {e}")))
    }
}

/// Where the new rows come from.
#[derive(Debug, Clone, Copy)]
pub enum RowInit<'a> {
    /// The mean of the existing rows.
    Mean,
    /// The rows of the same tokens in this model folder (the instruct sibling).
    Sibling(&'a Path),
}

/// ChatML's turn tokens that `tok` lacks, when it has no complete set of
/// ChatML, Gemma or Llama-3 turn tokens (empty when the spectrum format works).
pub fn missing_turn_tokens(tok: &TextTokenizer) -> Vec<String> {
    if crate::template::has_turn_tokens(tok) {
        return Vec::new();
    }
    ["<|im_start|>", "<|im_end|>"]
        .into_iter()
        .filter(|t| tok.token_id(t).is_none())
        .map(str::to_string)
        .collect()
}

/// Writes to `out` a copy of the model in `src` with `tokens` added as
/// special tokens (ids after the tokenizer's last one) and their rows set by
/// `init`. The source folder is not changed.
pub fn add_tokens(src: &Path, out: &Path, tokens: &[String], init: RowInit) -> Result<AddedTokens> {
    let md = ModelDir::open(src)?;
    if md.adapter.is_some() || md.config.multimodal {
        return Err(Problem::say(
            format!(
                "{}: tokens can be added to a plain text model folder only",
                src.display()
            ),
            "export the merged model, or use its language model",
        )
        .into());
    }
    if tokens.is_empty() {
        return Err(LmError::bad(src, "no tokens to add"));
    }
    let tok_path = md.dir.join("tokenizer.json");
    let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
        .map_err(|e| LmError::bad(&tok_path, format!("not a tokenizer: {e}")))?;
    if let Some(t) = tokens.iter().find(|t| tokenizer.token_to_id(t).is_some()) {
        return Err(LmError::bad(
            &tok_path,
            format!("the tokenizer already has {t}"),
        ));
    }
    let first = tokenizer.get_vocab_size(true);
    let specials: Vec<tokenizers::AddedToken> = tokens
        .iter()
        .map(|t| tokenizers::AddedToken::from(t.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| LmError::bad(&tok_path, format!("cannot add tokens: {e}")))?;
    let ids: Vec<Option<u32>> = tokens.iter().map(|t| tokenizer.token_to_id(t)).collect();
    let expected: Vec<Option<u32>> = (first..first + tokens.len())
        .map(|i| Some(i as u32))
        .collect();
    if ids != expected {
        return Err(LmError::bad(
            &tok_path,
            format!("the new tokens got ids {ids:?}, not the next free ones from {first}"),
        ));
    }
    let rows = first..first + tokens.len();
    let vocab = md.config.vocab_size.max(rows.end);

    let dtype = md.stored_dtype()?;
    let mut tensors = md.load_tensors(dtype, &Device::Cpu)?;
    let sibling = match init {
        RowInit::Mean => None,
        RowInit::Sibling(dir) => Some(sibling_rows(dir, tokens, md.config.hidden_size)?),
    };
    let names = ["model.embed_tokens.weight", "lm_head.weight"];
    for (k, name) in names.into_iter().enumerate() {
        let Some(w) = tensors.get(name) else { continue };
        let w = w.to_dtype(DType::F32)?;
        let new_rows = match &sibling {
            Some(s) => s[k].clone(),
            // The mean of the real tokens' rows (padding rows left out).
            None => w
                .narrow(0, 0, first.min(w.dim(0)?))?
                .mean_keepdim(0)?
                .repeat((tokens.len(), 1))?,
        };
        let grown = if vocab > w.dim(0)? {
            let pad = Tensor::zeros((vocab - w.dim(0)?, w.dim(1)?), DType::F32, &Device::Cpu)?;
            Tensor::cat(&[&w, &pad], 0)?
        } else {
            w
        };
        let grown = grown.slice_assign(&[rows.clone(), 0..grown.dim(1)?], &new_rows)?;
        tensors.insert(name.to_string(), grown.to_dtype(dtype)?);
    }

    std::fs::create_dir_all(out).map_err(|e| LmError::io(out, e))?;
    candle_core::safetensors::save(&tensors, out.join("model.safetensors"))?;
    let mut config = read_json(&md.dir.join("config.json"))?;
    config["vocab_size"] = serde_json::json!(vocab);
    write_json(&out.join("config.json"), &config)?;
    let out_tok = out.join("tokenizer.json");
    tokenizer
        .save(&out_tok, false)
        .map_err(|e| LmError::bad(&out_tok, format!("cannot write the tokenizer: {e}")))?;
    let tc_path = md.dir.join("tokenizer_config.json");
    if tc_path.exists() {
        let mut tc = read_json(&tc_path)?;
        // transformers also reads the added tokens from here.
        if let Some(decoder) = tc
            .get_mut("added_tokens_decoder")
            .and_then(|d| d.as_object_mut())
        {
            for (t, id) in tokens.iter().zip(rows.clone()) {
                decoder.insert(
                    id.to_string(),
                    serde_json::json!({"content": t, "lstrip": false, "normalized": false,
                                       "rstrip": false, "single_word": false, "special": true}),
                );
            }
        }
        write_json(&out.join("tokenizer_config.json"), &tc)?;
    }
    for f in SIDE_FILES {
        let from = md.dir.join(f);
        if from.exists() {
            std::fs::copy(&from, out.join(f)).map_err(|e| LmError::io(&from, e))?;
        }
    }
    let added = AddedTokens {
        tokens: tokens.to_vec(),
        first_id: first,
        init: match init {
            RowInit::Mean => "mean".into(),
            RowInit::Sibling(dir) => dir.display().to_string(),
        },
    };
    write_json(
        &out.join(MARKER),
        &serde_json::to_value(&added).expect("json"),
    )?;
    Ok(added)
}

/// The embedding and LM-head rows of `tokens` in the sibling model `dir`.
fn sibling_rows(dir: &Path, tokens: &[String], hidden: usize) -> Result<[Tensor; 2]> {
    let md = ModelDir::open(dir)?;
    if md.config.hidden_size != hidden {
        return Err(Problem::say(
            format!(
                "{}: hidden size {} differs from the base model's {hidden}: not a sibling",
                dir.display(),
                md.config.hidden_size
            ),
            "take the rows from the instruct model of the same base",
        )
        .into());
    }
    let tok = TextTokenizer::from_dir(&md.dir)?;
    let ids = tokens
        .iter()
        .map(|t| {
            tok.token_id(t).ok_or_else(|| {
                LmError::bad(dir, format!("the sibling model has no {t} token to copy"))
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu)?;
    let tensors: HashMap<String, Tensor> = md.load_tensors(DType::F32, &Device::Cpu)?;
    let embed = tensors
        .get("model.embed_tokens.weight")
        .ok_or_else(|| LmError::bad(dir, "no model.embed_tokens.weight in the sibling model"))?;
    let head = tensors.get("lm_head.weight").unwrap_or(embed);
    Ok([embed.index_select(&ids, 0)?, head.index_select(&ids, 0)?])
}

fn read_json(path: &PathBuf) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| LmError::bad(path, format!("not JSON: {e}")))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("json");
    std::fs::write(path, text).map_err(|e| LmError::io(path, e))
}
