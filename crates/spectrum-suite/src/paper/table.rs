//! A source table read into rows: one JSON object per row, lists and structs
//! as arrays and objects, as the reference's pandas sees them.

use std::path::Path;

use serde_json::{Map, Value};

use super::recipe::Format;

/// A table that cannot be read, with the file named.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: not a readable {format} file: {message}; delete it so that it is downloaded again"
)]
pub struct TableError {
    pub path: String,
    pub format: &'static str,
    pub message: String,
}

/// Every row of the table at `path`.
pub fn read(path: &Path, format: Format) -> Result<Vec<Map<String, Value>>, TableError> {
    match format {
        Format::Parquet => read_parquet(path),
        Format::Csv => read_csv(path),
        Format::Tsv => read_delimited(path, b'\t'),
        Format::Json => read_json(path),
        Format::Sav => read_sav(path),
    }
}

/// Every case of the SPSS system file at `path`, as pyreadstat's `read_sav`
/// gives them to pandas: numbers as floats, missing values as NaN, value
/// labels not applied.
pub fn read_sav(path: &Path) -> Result<Vec<Map<String, Value>>, TableError> {
    use super::sav::Cell;
    let sav = super::sav::read(path, &mut |_, _| true).map_err(|e| TableError {
        path: path.display().to_string(),
        format: "SPSS",
        message: e.message,
    })?;
    let cell = |c: &Cell| match c {
        Cell::Number(x) => serde_json::Number::from_f64(*x)
            .map_or_else(|| Value::String(super::py::NAN.into()), Value::Number),
        Cell::Text(t) => Value::String(t.clone()),
        Cell::Missing => Value::String(super::py::NAN.into()),
    };
    Ok(sav
        .rows
        .iter()
        .map(|(_, cells)| {
            sav.variables
                .iter()
                .zip(cells)
                .map(|(v, c)| (v.name.clone(), cell(c)))
                .collect()
        })
        .collect())
}

/// Every record of the JSON file at `path`: an array of objects, or an
/// object of objects by name, each record with its name as `key` (first).
pub fn read_json(path: &Path) -> Result<Vec<Map<String, Value>>, TableError> {
    let error = |message: String| TableError {
        path: path.display().to_string(),
        format: "JSON",
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    let record = |v: Value, at: &str| match v {
        Value::Object(map) => Ok(map),
        other => Err(error(format!("{at} is {other}, not a record"))),
    };
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| record(v, &format!("item {}", i + 1)))
            .collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(key, v)| {
                let mut row = Map::new();
                row.insert("key".into(), Value::String(key.clone()));
                row.extend(record(v, &format!("{key:?}"))?);
                Ok(row)
            })
            .collect(),
        other => Err(error(format!(
            "the file holds {other}, not an array or object of records"
        ))),
    }
}

/// Every row of the Parquet file at `path`.
pub fn read_parquet(path: &Path) -> Result<Vec<Map<String, Value>>, TableError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let error = |message: String| TableError {
        path: path.display().to_string(),
        format: "Parquet",
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

/// The cells pandas' `read_csv` reads as missing (its default `na_values`).
const MISSING: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// A cell pandas' `read_csv` reads as missing.
pub fn is_missing_cell(cell: &str) -> bool {
    MISSING.contains(&cell)
}

/// Every row of the CSV file at `path` (a header line, then records), each
/// column typed as pandas' `read_csv` types it: integers when every cell is
/// one, floats when every cell is a number (a missing cell in a number
/// column makes it float), booleans when every cell is True or False, text
/// otherwise. A missing cell is NaN ([`super::py::NAN`]), as in pandas.
pub fn read_csv(path: &Path) -> Result<Vec<Map<String, Value>>, TableError> {
    read_delimited(path, b',')
}

/// [`read_csv`] with another field separator (`pd.read_csv(delimiter=...)`).
pub fn read_delimited(path: &Path, delimiter: u8) -> Result<Vec<Map<String, Value>>, TableError> {
    let error = |message: String| TableError {
        path: path.display().to_string(),
        format: if delimiter == b',' {
            "CSV"
        } else {
            "delimited text"
        },
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_path(path)
        .map_err(|e| error(e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| error(e.to_string()))?
        .iter()
        .map(String::from)
        .collect();
    let mut records: Vec<csv::StringRecord> = Vec::new();
    for record in reader.records() {
        records.push(record.map_err(|e| error(e.to_string()))?);
    }
    let columns: Vec<Vec<Value>> = (0..header.len())
        .map(|c| typed(records.iter().map(|r| r.get(c).unwrap_or(""))))
        .collect();
    Ok((0..records.len())
        .map(|i| {
            header
                .iter()
                .zip(&columns)
                .map(|(name, column)| (name.clone(), column[i].clone()))
                .collect()
        })
        .collect())
}

/// One CSV column's cells, typed together.
fn typed<'a>(cells: impl Iterator<Item = &'a str> + Clone) -> Vec<Value> {
    let present = || cells.clone().filter(|c| !MISSING.contains(c));
    let any_missing = cells.clone().any(|c| MISSING.contains(&c));
    let int = |c: &str| c.trim().parse::<i64>().ok();
    let float = |c: &str| {
        let t = c.trim();
        match t.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            _ => t.parse::<f64>().ok().filter(|x| x.is_finite()),
        }
    };
    let nan = || Value::String(super::py::NAN.into());
    let missing_or = |c: &str, v: Value| if MISSING.contains(&c) { nan() } else { v };
    if present().count() > 0 && !any_missing && present().all(|c| int(c).is_some()) {
        return cells
            .map(|c| Value::from(int(c).unwrap_or_default()))
            .collect();
    }
    if present().count() > 0 && present().all(|c| float(c).is_some()) {
        return cells
            .map(|c| missing_or(c, float(c).map_or_else(nan, Value::from)))
            .collect();
    }
    let boolean = |c: &str| match c {
        "True" | "TRUE" | "true" => Some(true),
        "False" | "FALSE" | "false" => Some(false),
        _ => None,
    };
    if present().count() > 0 && !any_missing && present().all(|c| boolean(c).is_some()) {
        return cells
            .map(|c| Value::Bool(boolean(c).unwrap_or_default()))
            .collect();
    }
    cells
        .map(|c| missing_or(c, Value::String(c.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_typed_as_pandas_types_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "n,x,gap,flag,text,\"quoted, with comma\"\n\
             1,-2.18,3,True,hello,\"a \"\"b\"\"\"\n\
             2,1e-05,,False,NA,\"line\nbreak\"\n",
        )
        .expect("write");
        let rows = read_csv(&path).expect("reads");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["n"], Value::from(1));
        assert_eq!(rows[0]["x"], Value::from(-2.18));
        assert_eq!(rows[1]["x"], Value::from(1e-5));
        // An int column with a missing cell is float, the cell NaN.
        let str_of = |v: &Value| super::super::py::str_of(v);
        assert_eq!(str_of(&rows[0]["gap"]), "3.0");
        assert_eq!(str_of(&rows[1]["gap"]), "nan");
        assert_eq!(rows[1]["flag"], Value::Bool(false));
        assert_eq!(str_of(&rows[1]["text"]), "nan");
        assert_eq!(super::super::py::json_dumps(&rows[1]["text"]), "NaN");
        assert_eq!(rows[0]["quoted, with comma"], Value::from("a \"b\""));
        assert_eq!(rows[1]["quoted, with comma"], Value::from("line\nbreak"));
    }

    #[test]
    fn a_ragged_csv_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "a,b\n1,2\n3\n").expect("write");
        let e = read_csv(&path).expect_err("ragged").to_string();
        assert!(e.contains("bad.csv") && e.contains("CSV"), "{e}");
    }
}
