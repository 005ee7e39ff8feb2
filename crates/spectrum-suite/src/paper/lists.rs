//! The word lists some diverse-valid tasks check against
//! (`recipes/word_lists.toml`): where each comes from and how its file
//! becomes entries, as the reference's loaders read them.

use serde::Deserialize;

use super::recipe::Format;
use super::table;

/// One downloadable word list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// The name `word_list` rules use.
    pub name: String,
    pub url: String,
    /// The list as several files: `url` with `{n}` for each number of this
    /// inclusive range (the repository's files, one per year).
    #[serde(default)]
    pub numbers: Option<[u32; 2]>,
    /// A CSV file with a header: this column (or these, an entry of several
    /// fields; a row missing one is left out).
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default)]
    pub columns: Vec<String>,
    /// Lines without a header: skip this many, then take this 0-based field.
    #[serde(default)]
    pub skip_lines: usize,
    #[serde(default)]
    pub field: Option<usize>,
    /// Strip each entry (Python's `str.strip`).
    #[serde(default)]
    pub strip: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalog {
    list: Vec<ListSpec>,
}

/// Every list `suite fetch` can download.
pub fn specs() -> Result<Vec<ListSpec>, String> {
    let catalog: Catalog = toml::from_str(include_str!("../../recipes/word_lists.toml"))
        .map_err(|e| format!("recipes/word_lists.toml: {e}"))?;
    Ok(catalog.list)
}

impl ListSpec {
    /// The files the list is read from.
    pub fn urls(&self) -> Vec<String> {
        match self.numbers {
            Some([from, to]) => (from..=to)
                .map(|n| self.url.replace("{n}", &n.to_string()))
                .collect(),
            None => vec![self.url.clone()],
        }
    }
}

/// The entries of the list `spec` in one of its downloaded files' `text`, or
/// what is wrong with the file.
pub fn entries(spec: &ListSpec, text: &str) -> Result<Vec<Vec<String>>, String> {
    let clean = |c: String| {
        if spec.strip {
            super::py::strip(&c).to_string()
        } else {
            c
        }
    };
    match (&spec.column, spec.field) {
        (Some(column), None) => field_entries(std::slice::from_ref(column), text, clean),
        (None, None) if !spec.columns.is_empty() => field_entries(&spec.columns, text, clean),
        (None, Some(field)) => {
            let rest: String = text.split_inclusive('\n').skip(spec.skip_lines).collect();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(rest.as_bytes());
            let mut out = Vec::new();
            for record in reader.records() {
                let record = record.map_err(|e| e.to_string())?;
                let cell = record.get(field).unwrap_or("");
                if !table::is_missing_cell(cell) {
                    out.push(vec![clean(cell.to_string())]);
                }
            }
            Ok(out)
        }
        _ => Err(format!(
            "list {}: give one of `column`, `columns` or `field`",
            spec.name
        )),
    }
}

/// Entries of `columns` of a CSV file with a header (names stripped): each
/// row with all of them, cleaned.
fn field_entries(
    columns: &[String],
    text: &str,
    clean: impl Fn(String) -> String,
) -> Result<Vec<Vec<String>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| super::py::strip(h).to_string())
        .collect();
    let at: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| format!("no column {c:?} (it has {})", header.join(", ")))
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let fields: Vec<&str> = at.iter().map(|&i| record.get(i).unwrap_or("")).collect();
        if fields.iter().all(|f| !table::is_missing_cell(f)) {
            out.push(fields.into_iter().map(|f| clean(f.to_string())).collect());
        }
    }
    Ok(out)
}

/// How a downloaded list file is read (for the cache's file name).
pub fn format(spec: &ListSpec) -> Option<Format> {
    Format::of(&spec.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_reads_and_names_a_known_shape() {
        let specs = specs().expect("catalog");
        assert_eq!(specs.len(), 6);
        for s in &specs {
            let shapes = [s.column.is_some(), s.field.is_some(), !s.columns.is_empty()];
            assert_eq!(shapes.iter().filter(|b| **b).count(), 1, "{}", s.name);
            assert!(!s.urls().is_empty());
        }
        let cars = specs
            .iter()
            .find(|s| s.name == "us-car-makes")
            .expect("cars");
        assert_eq!(cars.urls().len(), 35, "1992..=2026");
        assert!(cars.urls()[0].ends_with("/1992.csv"));
    }

    #[test]
    fn a_missing_column_is_named() {
        let spec = &specs().expect("catalog")[0];
        let e = entries(spec, "hex,good name\n#000,x\n").expect_err("no name column");
        assert!(e.contains("\"name\"") && e.contains("hex"), "{e}");
    }
}
