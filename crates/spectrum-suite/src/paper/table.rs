//! A source table read into rows: one JSON object per row, lists and structs
//! as arrays and objects, as the reference's pandas sees them.

use std::path::Path;

use serde_json::{Map, Value};

/// A table that cannot be read, with the file named.
#[derive(Debug, thiserror::Error)]
#[error("{path}: not a readable Parquet file: {message}; delete it so that it is downloaded again")]
pub struct TableError {
    pub path: String,
    pub message: String,
}

/// Every row of the Parquet file at `path`.
pub fn read_parquet(path: &Path) -> Result<Vec<Map<String, Value>>, TableError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let error = |message: String| TableError {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| error(e.to_string()))?;
    let mut rows = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for row in reader
        .get_row_iter(None)
        .map_err(|e| error(e.to_string()))?
    {
        match row.map_err(|e| error(e.to_string()))?.to_json_value() {
            Value::Object(map) => rows.push(map),
            other => return Err(error(format!("a row is {other}, not a record"))),
        }
    }
    Ok(rows)
}
