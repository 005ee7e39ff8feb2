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
    /// A CSV file with a header: this column.
    #[serde(default)]
    pub column: Option<String>,
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

/// The entries of the list `spec` in its downloaded file's `text` (one field
/// each), or what is wrong with the file.
pub fn entries(spec: &ListSpec, text: &str) -> Result<Vec<Vec<String>>, String> {
    let cells: Vec<String> = match (&spec.column, spec.field) {
        (Some(column), None) => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(text.as_bytes());
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| e.to_string())?
                .iter()
                .map(|h| super::py::strip(h).to_string())
                .collect();
            let at = header
                .iter()
                .position(|h| h == column)
                .ok_or_else(|| format!("no column {column:?} (it has {})", header.join(", ")))?;
            let mut cells = Vec::new();
            for record in reader.records() {
                let record = record.map_err(|e| e.to_string())?;
                cells.push(record.get(at).unwrap_or("").to_string());
            }
            cells
        }
        (None, Some(field)) => {
            let rest: String = text.split_inclusive('\n').skip(spec.skip_lines).collect();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(rest.as_bytes());
            let mut cells = Vec::new();
            for record in reader.records() {
                let record = record.map_err(|e| e.to_string())?;
                cells.push(record.get(field).unwrap_or("").to_string());
            }
            cells
        }
        _ => return Err(format!("list {}: give `column` or `field`", spec.name)),
    };
    Ok(cells
        .into_iter()
        .filter(|c| !table::is_missing_cell(c))
        .map(|c| {
            vec![if spec.strip {
                super::py::strip(&c).to_string()
            } else {
                c
            }]
        })
        .collect())
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
        assert_eq!(specs.len(), 4);
        for s in &specs {
            assert!(s.column.is_some() != s.field.is_some(), "{}", s.name);
        }
    }

    #[test]
    fn a_missing_column_is_named() {
        let spec = &specs().expect("catalog")[0];
        let e = entries(spec, "hex,good name\n#000,x\n").expect_err("no name column");
        assert!(e.contains("\"name\"") && e.contains("hex"), "{e}");
    }
}
