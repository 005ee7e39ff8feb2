//! Streaming readers for the four file formats. Each turns a file into rows
//! (JSON objects) one at a time and hands them to a [`RowVisitor`]; none holds
//! more than one row (or one Parquet row group) in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};

use super::error::{ImportError, Location, RowProblem};
use super::fields::kind_of;

/// The file formats the importer reads, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Tsv,
    Parquet,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Parquet => "parquet",
        }
    }
}

/// Receives the rows of one file in order.
pub(crate) trait RowVisitor {
    /// The column names of a tabular file, before its first row.
    fn columns(&mut self, columns: &[String]) -> Result<(), ImportError>;
    /// Offers a JSON row's text to a faster parser; `true` means it was handled.
    fn fast_row(&mut self, _text: &str, _bytes_done: u64) -> Result<bool, ImportError> {
        Ok(false)
    }
    /// One row, or what made it unreadable. `bytes_done` is how far into the file it ends.
    fn row(
        &mut self,
        at: Location,
        row: Result<Map<String, Value>, RowProblem>,
        bytes_done: u64,
    ) -> Result<(), ImportError>;
}

fn io_error(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open(path: &Path) -> Result<BufReader<File>, ImportError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| io_error(path, e))
}

const UTF8_FIX: &str = "re-save the file as UTF-8";

fn utf8_problem(bytes: &[u8], e: std::str::Utf8Error) -> RowProblem {
    let bad = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
    RowProblem::new(
        None,
        format!(
            "is not valid UTF-8 (byte 0x{bad:02x} at column {})",
            e.valid_up_to() + 1
        ),
        UTF8_FIX,
    )
}

fn json_problem(e: &serde_json::Error) -> RowProblem {
    let message = if e.is_eof() {
        format!(
            "incomplete JSON: the line ends before the value is closed ({})",
            strip_position(&e.to_string())
        )
    } else {
        format!(
            "invalid JSON at column {}: {}",
            e.column(),
            strip_position(&e.to_string())
        )
    };
    RowProblem::new(
        None,
        message,
        "correct the JSON syntax on this line (each line must be one complete JSON object)",
    )
}

/// serde_json appends " at line L column C" to its messages; we report positions ourselves.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

fn object(v: Value) -> Result<Map<String, Value>, RowProblem> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(RowProblem::new(
            None,
            format!("expected a JSON object, found {}", kind_of(&other)),
            "write each row as an object such as {\"task\": ..., \"messages\": [...]}",
        )),
    }
}

/// One JSON object per line; blank lines are skipped.
pub(crate) fn read_jsonl(path: &Path, visitor: &mut dyn RowVisitor) -> Result<u64, ImportError> {
    let mut reader = open(path)?;
    let mut buf = Vec::with_capacity(4096);
    let (mut line, mut bytes, mut rows) = (0u64, 0u64, 0u64);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        line += 1;
        bytes += n as u64;
        let mut text: &[u8] = &buf;
        if line == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows += 1;
        let row = match std::str::from_utf8(text) {
            Err(e) => Err(utf8_problem(text, e)),
            Ok(s) if visitor.fast_row(s, bytes)? => continue,
            Ok(s) => serde_json::from_str::<Value>(s)
                .map_err(|e| json_problem(&e))
                .and_then(object),
        };
        visitor.row(Location::Line(line), row, bytes)?;
    }
    Ok(rows)
}

/// A JSON array of objects, split into elements by a small scanner so each
/// element is parsed (and reported) on its own; a `.json` file that starts with
/// `{` is read as JSON Lines.
pub(crate) fn read_json(path: &Path, visitor: &mut dyn RowVisitor) -> Result<u64, ImportError> {
    let mut reader = open(path)?;
    let first = loop {
        let chunk = reader.fill_buf().map_err(|e| io_error(path, e))?;
        match chunk
            .iter()
            .position(|b| !b.is_ascii_whitespace() && !b"\xEF\xBB\xBF".contains(b))
        {
            Some(i) => break chunk[i],
            None if chunk.is_empty() => return Ok(0),
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    };
    match first {
        b'{' => read_jsonl(path, visitor),
        b'[' => ArrayScanner::default().run(path, reader, visitor),
        other => Err(ImportError::Unreadable {
            path: path.to_path_buf(),
            message: format!(
                "expected a JSON array of objects, but the file starts with {:?}",
                other as char
            ),
            fix: "wrap the rows in [ ... ] or save them as .jsonl, one object per line".into(),
        }),
    }
}

#[derive(Default)]
struct ArrayScanner {
    element: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    opened: bool,
    closed: bool,
    line: u64,
    element_line: u64,
    index: u64,
}

impl ArrayScanner {
    fn run(
        mut self,
        path: &Path,
        mut reader: BufReader<File>,
        visitor: &mut dyn RowVisitor,
    ) -> Result<u64, ImportError> {
        self.line = 1;
        let mut bytes = 0u64;
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut chunk).map_err(|e| io_error(path, e))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            for &b in &chunk[..n] {
                self.byte(b, path, bytes, visitor)?;
            }
        }
        if !self.closed {
            return Err(ImportError::Unreadable {
                path: path.to_path_buf(),
                message: format!(
                    "the JSON array is not closed (the file ends inside element {})",
                    self.index + 1
                ),
                fix: "check that the file is complete and ends with ]".into(),
            });
        }
        Ok(self.index)
    }

    fn byte(
        &mut self,
        b: u8,
        path: &Path,
        bytes: u64,
        visitor: &mut dyn RowVisitor,
    ) -> Result<(), ImportError> {
        if b == b'\n' {
            self.line += 1;
        }
        if self.closed {
            if !b.is_ascii_whitespace() {
                return Err(ImportError::Unreadable {
                    path: path.to_path_buf(),
                    message: format!(
                        "unexpected {:?} after the closing ] on line {}",
                        b as char, self.line
                    ),
                    fix: "remove what follows the array, or save the rows as .jsonl".into(),
                });
            }
            return Ok(());
        }
        if self.depth > 0 {
            self.element.push(b);
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.emit(bytes, visitor)?;
                        }
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        match b {
            b'[' if !self.opened => self.opened = true,
            b']' if self.opened => self.closed = true,
            b',' => {}
            b'\xEF' | b'\xBB' | b'\xBF' if !self.opened => {}
            b if b.is_ascii_whitespace() => {}
            b'{' | b'[' => {
                self.depth = 1;
                self.element_line = self.line;
                self.element.push(b);
            }
            other => {
                // A scalar element: collect it up to the next comma as a bad row.
                return Err(ImportError::Unreadable {
                    path: path.to_path_buf(),
                    message: format!(
                        "element {} on line {} starts with {:?}; expected an object",
                        self.index + 1,
                        self.line,
                        other as char
                    ),
                    fix: "make every element of the array a JSON object".into(),
                });
            }
        }
        Ok(())
    }

    fn emit(&mut self, bytes: u64, visitor: &mut dyn RowVisitor) -> Result<(), ImportError> {
        self.index += 1;
        let at = Location::Element {
            index: self.index,
            line: self.element_line,
        };
        let row = match std::str::from_utf8(&self.element) {
            Err(e) => Err(utf8_problem(&self.element, e)),
            Ok(s) => serde_json::from_str::<Value>(s)
                .map_err(|e| {
                    let mut p = json_problem(&e);
                    p.message = format!(
                        "invalid JSON at line {}: {}",
                        self.element_line + e.line() as u64 - 1,
                        strip_position(&e.to_string())
                    );
                    p.fix = "correct the JSON syntax of this element".into();
                    p
                })
                .and_then(object),
        };
        self.element.clear();
        visitor.row(at, row, bytes)
    }
}

/// CSV (or TSV) with a header row. Cells stay strings; list-valued fields hold JSON.
pub(crate) fn read_csv(
    path: &Path,
    delimiter: u8,
    visitor: &mut dyn RowVisitor,
) -> Result<u64, ImportError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(file);
    let header = reader
        .byte_headers()
        .map_err(|e| csv_unreadable(path, e))?
        .clone();
    if header.is_empty() || header.iter().all(<[u8]>::is_empty) {
        return Ok(0);
    }
    let mut columns = Vec::with_capacity(header.len());
    for (i, h) in header.iter().enumerate() {
        let name = std::str::from_utf8(h).map_err(|_| ImportError::Unreadable {
            path: path.to_path_buf(),
            message: format!("line 1: the name of column {} is not valid UTF-8", i + 1),
            fix: UTF8_FIX.into(),
        })?;
        columns.push(name.trim_start_matches('\u{feff}').trim().to_string());
    }
    visitor.columns(&columns)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_unreadable(path, e)),
        }
        rows += 1;
        let pos = record.position().map_or(0, |p| p.byte());
        let at = Location::Line(record.position().map_or(rows + 1, |p| p.line()));
        visitor.row(at, csv_row(&columns, &record), pos)?;
    }
    Ok(rows)
}

fn csv_row(columns: &[String], record: &csv::ByteRecord) -> Result<Map<String, Value>, RowProblem> {
    if record.len() != columns.len() {
        return Err(RowProblem::new(
            None,
            format!(
                "has {} fields, but the header has {} columns",
                record.len(),
                columns.len()
            ),
            "quote fields that contain the delimiter, and give every row one value per column",
        ));
    }
    let mut map = Map::with_capacity(columns.len());
    for (i, (name, cell)) in columns.iter().zip(record.iter()).enumerate() {
        let text = std::str::from_utf8(cell).map_err(|e| {
            let mut p = utf8_problem(cell, e);
            p.field = Some(name.clone());
            p.message = format!("column {} is not valid UTF-8", i + 1);
            p
        })?;
        map.insert(name.clone(), Value::String(text.to_string()));
    }
    Ok(map)
}

fn csv_unreadable(path: &Path, e: csv::Error) -> ImportError {
    let at = e
        .position()
        .map(|p| format!("line {}: ", p.line()))
        .unwrap_or_default();
    ImportError::Unreadable {
        path: path.to_path_buf(),
        message: format!("{at}{e}"),
        fix: "check the CSV quoting (a quote inside a field is written as two quotes)".into(),
    }
}

/// Parquet, row group by row group. Lists and structs become JSON arrays and objects.
pub(crate) fn read_parquet(path: &Path, visitor: &mut dyn RowVisitor) -> Result<u64, ImportError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let unreadable = |e: parquet::errors::ParquetError| {
        ImportError::Unreadable {
        path: path.to_path_buf(),
        message: format!("not a readable Parquet file: {e}"),
        fix: "check that the file is complete; re-export it with pandas.DataFrame.to_parquet or pyarrow".into(),
    }
    };
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let size = file.metadata().map_err(|e| io_error(path, e))?.len();
    let reader = SerializedFileReader::new(file).map_err(unreadable)?;
    let meta = reader.metadata();
    let total = meta.file_metadata().num_rows().max(1) as u64;
    let columns: Vec<String> = meta
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    visitor.columns(&columns)?;
    let mut rows = 0u64;
    for row in reader.get_row_iter(None).map_err(unreadable)? {
        let row = row.map_err(unreadable)?;
        rows += 1;
        let value = object(row.to_json_value());
        visitor.row(Location::Row(rows), value, size * rows / total)?;
    }
    Ok(rows)
}
