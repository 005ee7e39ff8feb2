//! SPSS system files (`.sav`, bytecode-compressed or not, and `.zsav`): the
//! dictionary (names, labels, value labels, user-missing values) and the
//! cases, read as pyreadstat's `read_sav` reads them with its defaults: text
//! with trailing spaces trimmed, user-missing and system-missing numbers
//! missing, value labels in the file's order. The layout is PSPP's "System
//! File Format" (pspp.benpfaff.org, dev guide, appendix B).
//!
//! Cases are streamed: a caller keeps the ones it wants (the World Values
//! Survey has 97,220 of ~600 variables; a task reads 2,000).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One cell of a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(f64),
    Text(String),
    /// System-missing, or a value the variable declares user-missing.
    Missing,
}

/// One variable of the dictionary (a very long string's segments joined).
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// The long name where the file has one.
    pub name: String,
    pub label: Option<String>,
    /// 0 for a number, else the text's width in bytes.
    pub width: usize,
    /// The variable's value labels, in the file's order.
    pub value_labels: Vec<(Cell, String)>,
    pub missing: Missing,
}

/// The values a variable declares user-missing.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Missing {
    #[default]
    None,
    /// Up to three values (numbers, or texts of width <= 8).
    Values(Vec<Cell>),
    /// A closed range of numbers, and maybe one more value.
    Range {
        low: f64,
        high: f64,
        also: Option<f64>,
    },
}

impl Missing {
    fn covers(&self, cell: &Cell) -> bool {
        match (self, cell) {
            (Missing::None, _) | (_, Cell::Missing) => false,
            (Missing::Values(values), cell) => values.contains(cell),
            (Missing::Range { low, high, also }, Cell::Number(x)) => {
                (low..=high).contains(&x) || *also == Some(*x)
            }
            (Missing::Range { .. }, Cell::Text(_)) => false,
        }
    }
}

impl Variable {
    /// The label of `cell`, if the variable has one for it.
    pub fn label_of(&self, cell: &Cell) -> Option<&str> {
        self.value_labels
            .iter()
            .find(|(value, _)| value == cell)
            .map(|(_, label)| label.as_str())
    }
}

/// A system file's dictionary and the cases a reader kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Sav {
    pub variables: Vec<Variable>,
    /// How many cases the file has.
    pub cases: usize,
    /// The kept cases: their 0-based number in the file and their cells, one
    /// per variable.
    pub rows: Vec<(usize, Vec<Cell>)>,
}

impl Sav {
    /// The index of the variable called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.variables.iter().position(|v| v.name == name)
    }
}

/// A file that is not a readable SPSS system file, named.
#[derive(Debug, thiserror::Error)]
#[error("{}: not a readable SPSS system file: {message}", path.display())]
pub struct SavError {
    pub path: PathBuf,
    pub message: String,
}

/// Reads the file at `path`, keeping the cases for which `keep(case, cases)`
/// is true (`case` counts from 0; `cases` is the file's number of cases).
pub fn read(path: &Path, keep: &mut dyn FnMut(usize, usize) -> bool) -> Result<Sav, SavError> {
    let error = |message: String| SavError {
        path: path.to_path_buf(),
        message,
    };
    let open = || File::open(path).map(BufReader::new);
    let mut input = Input::new(open().map_err(|e| error(e.to_string()))?);
    let dict = Dictionary::read(&mut input).map_err(error)?;
    let start = input.offset;
    let variables = dict.variables().map_err(error)?;
    let cases = match dict.cases {
        Some(n) => n,
        None => {
            // The writer did not know: count them first.
            let mut n = 0;
            let mut file = open().map_err(|e| error(e.to_string()))?;
            file.seek(SeekFrom::Start(start))
                .map_err(|e| error(e.to_string()))?;
            let mut data = dict.data(file).map_err(error)?;
            while data.case(&dict, false).map_err(error)?.is_some() {
                n += 1;
            }
            n
        }
    };
    let mut data = dict.data(input.inner).map_err(error)?;
    let mut rows = Vec::new();
    for case in 0..cases {
        let wanted = keep(case, cases);
        match data.case(&dict, wanted).map_err(error)? {
            Some(raw) if wanted => rows.push((case, dict.cells(&variables, raw))),
            Some(_) => {}
            None => {
                return Err(error(format!(
                    "the header promises {cases} cases, the data ends after {case}"
                )));
            }
        }
    }
    Ok(Sav {
        variables,
        cases,
        rows,
    })
}

/// A byte source that counts what it has read and knows its byte order.
struct Input<R> {
    inner: R,
    offset: u64,
    big_endian: bool,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Input {
            inner,
            offset: 0,
            big_endian: false,
        }
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| format!("the file ends inside its dictionary ({e})"))?;
        self.offset += n as u64;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let v = self.bytes(N)?;
        Ok(v.try_into().expect("N bytes"))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.array::<4>()?;
        Ok(if self.big_endian {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        })
    }

    fn f64(&mut self) -> Result<f64, String> {
        let b = self.array::<8>()?;
        Ok(number(b, self.big_endian))
    }

    fn i64_triple(&mut self) -> Result<(u64, u64, u64), String> {
        let mut one = || -> Result<u64, String> {
            let b = self.array::<8>()?;
            let v = if self.big_endian {
                i64::from_be_bytes(b)
            } else {
                i64::from_le_bytes(b)
            };
            u64::try_from(v).map_err(|_| "its zlib header has a negative offset".to_string())
        };
        Ok((one()?, one()?, one()?))
    }

    fn count(&mut self, what: &str) -> Result<usize, String> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| format!("{what} is {n}"))
    }
}

fn number(b: [u8; 8], big_endian: bool) -> f64 {
    if big_endian {
        f64::from_be_bytes(b)
    } else {
        f64::from_le_bytes(b)
    }
}

/// Text as the file stores it: trailing spaces and NULs dropped (as readstat
/// does), decoded from the file's character encoding.
fn text(bytes: &[u8], encoding: Encoding) -> String {
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    let bytes = &bytes[..end];
    match encoding {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Windows1252 => bytes.iter().map(|&b| windows_1252(b)).collect(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Utf8,
    Windows1252,
}

impl Encoding {
    /// By the encoding record's name, or the machine record's code page.
    fn named(name: &str) -> Result<Encoding, String> {
        match name.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
            "UTF8" => Ok(Encoding::Utf8),
            "WINDOWS1252" | "CP1252" | "ISO88591" | "LATIN1" | "ASCII" | "USASCII" => {
                Ok(Encoding::Windows1252)
            }
            _ => Err(format!(
                "its text is in {name}, which this reader does not decode (UTF-8 and Windows-1252 are read); save it again from SPSS in Unicode mode"
            )),
        }
    }

    fn code_page(code: i32) -> Result<Encoding, String> {
        match code {
            65001 => Ok(Encoding::Utf8),
            1252 | 28591 | 2 | 3 | 20127 => Ok(Encoding::Windows1252),
            other => Err(format!(
                "its text is in code page {other}, which this reader does not decode (UTF-8 and Windows-1252 are read); save it again from SPSS in Unicode mode"
            )),
        }
    }
}

/// The character of a Windows-1252 byte (its 0x80-0x9F block differs from
/// Latin-1's control characters).
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

/// How the cases are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Compression {
    None,
    Bytecode,
    Zlib,
}

/// One 8-byte slot of the dictionary (a string wider than 8 bytes takes
/// several; the first carries the variable).
#[derive(Debug, Clone)]
struct Slot {
    /// 0: number; > 0: the string's width; None: a string's continuation.
    width: Option<usize>,
    name: String,
    label: Option<String>,
    missing: Missing,
}

/// A value label set: raw values with their labels, and the 1-based slots
/// of the variables they label.
struct LabelSet {
    labels: Vec<([u8; 8], Vec<u8>)>,
    slots: Vec<usize>,
}

/// A value label of a string wider than 8 bytes (extension 21).
struct LongLabel {
    variable: String,
    value: Vec<u8>,
    label: Vec<u8>,
}

/// A variable record's texts, decoded once the file's encoding is known.
struct RawTexts {
    name: Vec<u8>,
    label: Option<Vec<u8>>,
    /// A string variable's missing values.
    missing: Option<Vec<Vec<u8>>>,
}

/// Everything before the cases.
struct Dictionary {
    big_endian: bool,
    compression: Compression,
    bias: f64,
    cases: Option<usize>,
    slots: Vec<Slot>,
    label_sets: Vec<LabelSet>,
    long_names: Vec<(String, String)>,
    very_long: Vec<(String, usize)>,
    /// Labels of strings wider than 8 bytes.
    long_labels: Vec<LongLabel>,
    encoding: Encoding,
    sysmis: f64,
    /// The zlib layout: (where the zlib header starts, where the trailer starts).
    zlib: Option<(u64, u64)>,
}

impl Dictionary {
    fn read<R: Read>(input: &mut Input<R>) -> Result<Dictionary, String> {
        let magic = input.array::<4>()?;
        let compressed_magic = match &magic {
            b"$FL2" => false,
            b"$FL3" => true,
            _ => return Err("it does not start with $FL2 or $FL3".into()),
        };
        input.bytes(60)?;
        let layout = input.array::<4>()?;
        input.big_endian = match (i32::from_le_bytes(layout), i32::from_be_bytes(layout)) {
            (2 | 3, _) => false,
            (_, 2 | 3) => true,
            _ => return Err("its layout code is neither 2 nor 3".into()),
        };
        let _case_size = input.i32()?;
        let compression = match (input.i32()?, compressed_magic) {
            (0, false) => Compression::None,
            (1, false) => Compression::Bytecode,
            (2, true) => Compression::Zlib,
            (code, _) => return Err(format!("compression code {code} is not known")),
        };
        let _weight = input.i32()?;
        let cases = usize::try_from(input.i32()?).ok();
        let bias = input.f64()?;
        input.bytes(9 + 8 + 64 + 3)?;
        let mut dict = Dictionary {
            big_endian: input.big_endian,
            compression,
            bias,
            cases,
            slots: Vec::new(),
            label_sets: Vec::new(),
            long_names: Vec::new(),
            very_long: Vec::new(),
            long_labels: Vec::new(),
            encoding: Encoding::Windows1252,
            sysmis: -f64::MAX,
            zlib: None,
        };
        let (mut named_encoding, mut code_page) = (None, None);
        // Texts are decoded once the encoding record (which comes late) is read.
        let mut raw_texts: Vec<RawTexts> = Vec::new();
        loop {
            match input.i32()? {
                2 => {
                    let kind = input.i32()?;
                    let has_label = input.i32()?;
                    let n_missing = input.i32()?;
                    input.bytes(8)?;
                    let name = input.bytes(8)?;
                    let label = if has_label == 1 {
                        let len = input.count("a variable label's length")?;
                        let label = input.bytes(len)?;
                        input.bytes(len.next_multiple_of(4) - len)?;
                        Some(label)
                    } else {
                        None
                    };
                    let count = n_missing.unsigned_abs() as usize;
                    if count > 3 {
                        return Err(format!("a variable declares {n_missing} missing values"));
                    }
                    let raw_missing: Vec<[u8; 8]> = (0..count)
                        .map(|_| input.array::<8>())
                        .collect::<Result<_, _>>()?;
                    let width = match kind {
                        -1 => None,
                        w if w >= 0 => Some(w as usize),
                        w => return Err(format!("a variable has type {w}")),
                    };
                    let b = input.big_endian;
                    let missing = match (n_missing, width) {
                        (0, _) | (_, None) => Missing::None,
                        (-2 | -3, _) => Missing::Range {
                            low: number(raw_missing[0], b),
                            high: number(raw_missing[1], b),
                            also: raw_missing.get(2).map(|m| number(*m, b)),
                        },
                        (_, Some(0)) => Missing::Values(
                            raw_missing
                                .iter()
                                .map(|m| Cell::Number(number(*m, b)))
                                .collect(),
                        ),
                        // Texts: decoded below, once the encoding is known.
                        _ => Missing::None,
                    };
                    let strings = (n_missing > 0 && width.is_some_and(|w| w > 0))
                        .then(|| raw_missing.iter().map(|m| m.to_vec()).collect());
                    raw_texts.push(RawTexts {
                        name,
                        label,
                        missing: strings,
                    });
                    dict.slots.push(Slot {
                        width,
                        name: String::new(),
                        label: None,
                        missing,
                    });
                }
                3 => {
                    let n = input.count("a value label count")?;
                    let mut labels = Vec::with_capacity(n);
                    for _ in 0..n {
                        let value = input.array::<8>()?;
                        let len = input.array::<1>()?[0] as usize;
                        let label = input.bytes(len)?;
                        input.bytes((len + 1).next_multiple_of(8) - (len + 1))?;
                        labels.push((value, label));
                    }
                    if input.i32()? != 4 {
                        return Err("a value label record is not followed by its variables".into());
                    }
                    let n = input.count("a value label's variable count")?;
                    let vars = (0..n)
                        .map(|_| input.count("a variable index"))
                        .collect::<Result<_, _>>()?;
                    dict.label_sets.push(LabelSet {
                        labels,
                        slots: vars,
                    });
                }
                6 => {
                    let lines = input.count("a document's line count")?;
                    input.bytes(lines * 80)?;
                }
                7 => {
                    let subtype = input.i32()?;
                    let size = input.count("an extension's item size")?;
                    let count = input.count("an extension's item count")?;
                    let data = input.bytes(size * count)?;
                    let big_endian = dict.big_endian;
                    let int = |i: usize| -> Option<i32> {
                        let b: [u8; 4] = data.get(i * 4..i * 4 + 4)?.try_into().ok()?;
                        Some(if big_endian {
                            i32::from_be_bytes(b)
                        } else {
                            i32::from_le_bytes(b)
                        })
                    };
                    match subtype {
                        3 => code_page = int(7),
                        4 if data.len() >= 8 => {
                            dict.sysmis = number(data[..8].try_into().expect("8"), dict.big_endian)
                        }
                        13 => dict.long_names = pairs(&data, b'\t'),
                        14 => {
                            for (name, width) in pairs(&data, 0) {
                                let width = width.trim_matches(['\t', '\0', ' ']);
                                let width = width.parse().map_err(|_| {
                                    format!("very long string {name} has width {width:?}")
                                })?;
                                dict.very_long.push((name, width));
                            }
                        }
                        20 => named_encoding = Some(String::from_utf8_lossy(&data).into_owned()),
                        21 => dict.long_labels = long_value_labels(&data, dict.big_endian)?,
                        _ => {}
                    }
                }
                999 => {
                    input.i32()?;
                    break;
                }
                other => return Err(format!("record type {other} is not known")),
            }
        }
        dict.encoding = match (named_encoding, code_page) {
            (Some(name), _) => Encoding::named(name.trim_end_matches('\0'))?,
            (None, Some(code)) => Encoding::code_page(code)?,
            (None, None) => Encoding::Windows1252,
        };
        for (slot, raw) in dict.slots.iter_mut().zip(raw_texts) {
            slot.name = text(&raw.name, dict.encoding);
            slot.label = raw.label.map(|l| text(&l, dict.encoding));
            if let Some(strings) = raw.missing {
                slot.missing = Missing::Values(
                    strings
                        .iter()
                        .map(|s| Cell::Text(text(s, dict.encoding)))
                        .collect(),
                );
            }
        }
        if compression == Compression::Zlib {
            let header = input.i64_triple()?;
            dict.zlib = Some((header.0, header.1));
        }
        Ok(dict)
    }

    /// The variables: slots merged into strings, segments into very long
    /// strings, long names applied, value labels attached.
    fn variables(&self) -> Result<Vec<Variable>, String> {
        let long_name = |short: &str| {
            self.long_names
                .iter()
                .find(|(s, _)| s.eq_ignore_ascii_case(short))
                .map_or(short.to_string(), |(_, long)| long.clone())
        };
        let mut out = Vec::new();
        let mut segments_left = 0usize;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(width) = slot.width else { continue };
            if segments_left > 0 {
                segments_left -= 1;
                continue;
            }
            let mut variable = Variable {
                name: long_name(&slot.name),
                label: slot.label.clone(),
                width,
                value_labels: Vec::new(),
                missing: slot.missing.clone(),
            };
            if let Some((_, total)) = self.very_long.iter().find(|(s, _)| *s == slot.name) {
                variable.width = *total;
                segments_left = total.div_ceil(252) - 1;
            }
            for set in &self.label_sets {
                if set.slots.contains(&(i + 1)) {
                    variable.value_labels = set
                        .labels
                        .iter()
                        .map(|(value, label)| {
                            let value = if width == 0 {
                                Cell::Number(number(*value, self.big_endian))
                            } else {
                                Cell::Text(text(value, self.encoding))
                            };
                            (value, text(label, self.encoding))
                        })
                        .collect();
                }
            }
            for long in &self.long_labels {
                if long.variable == variable.name || long.variable == slot.name {
                    variable.value_labels.push((
                        Cell::Text(text(&long.value, self.encoding)),
                        text(&long.label, self.encoding),
                    ));
                }
            }
            out.push(variable);
        }
        if out.is_empty() {
            return Err("its dictionary has no variables".into());
        }
        Ok(out)
    }

    /// The case stream that follows the dictionary.
    fn data<R: BufRead + 'static>(&self, inner: R) -> Result<Data, String> {
        let source: Box<dyn Read> = match self.zlib {
            None => Box::new(inner),
            Some((header, trailer)) => {
                // The compressed blocks lie between the zlib header (24
                // bytes, read with the dictionary) and the trailer.
                let blocks = trailer
                    .checked_sub(header + 24)
                    .ok_or("its zlib trailer comes before its data")?;
                Box::new(ZlibBlocks::new(inner.take(blocks)))
            }
        };
        Ok(Data {
            source,
            bytecode: self.compression != Compression::None,
            commands: [0; 8],
            next: 8,
            ended: false,
        })
    }

    /// The raw slots of a case as cells, one per variable.
    fn cells(&self, variables: &[Variable], raw: Vec<Raw>) -> Vec<Cell> {
        let mut out = Vec::with_capacity(variables.len());
        let mut at = 0;
        for variable in variables {
            let cell = if variable.width == 0 {
                let cell = match raw[at] {
                    Raw::Bytes(b) => {
                        let x = number(b, self.big_endian);
                        if x == self.sysmis {
                            Cell::Missing
                        } else {
                            Cell::Number(x)
                        }
                    }
                    Raw::Number(x) => Cell::Number(x),
                    Raw::Spaces | Raw::Sysmis => Cell::Missing,
                };
                at += 1;
                cell
            } else {
                // Segments of 255 bytes (all but the last) hold the text
                // packed tightly; the last segment's width is the rest.
                let segments = variable.width.div_ceil(252).max(1);
                let mut bytes = Vec::with_capacity(variable.width);
                for s in 0..segments {
                    let width = if segments == 1 {
                        variable.width
                    } else if s + 1 < segments {
                        255
                    } else {
                        variable.width - 252 * (segments - 1)
                    };
                    let n = width.div_ceil(8);
                    let mut segment = Vec::with_capacity(n * 8);
                    for r in &raw[at..at + n] {
                        match r {
                            Raw::Bytes(b) => segment.extend_from_slice(b),
                            _ => segment.extend_from_slice(b"        "),
                        }
                    }
                    segment.truncate(width);
                    bytes.extend_from_slice(&segment);
                    at += n;
                }
                bytes.truncate(variable.width);
                Cell::Text(text(&bytes, self.encoding))
            };
            out.push(if variable.missing.covers(&cell) {
                Cell::Missing
            } else {
                cell
            });
        }
        out
    }
}

/// `key=value` items separated by `sep` (long names: tabs; very long
/// strings: NUL then tab).
fn pairs(data: &[u8], sep: u8) -> Vec<(String, String)> {
    data.split(|&b| b == sep)
        .filter_map(|item| {
            let item = String::from_utf8_lossy(item);
            let item = item.trim_matches(['\t', '\0']);
            let (k, v) = item.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The long string value labels record (extension 21).
fn long_value_labels(data: &[u8], big_endian: bool) -> Result<Vec<LongLabel>, String> {
    let mut at = 0;
    let short = || "its long string value labels are cut short".to_string();
    let int = |at: &mut usize| -> Result<usize, String> {
        let b: [u8; 4] = data
            .get(*at..*at + 4)
            .ok_or_else(short)?
            .try_into()
            .expect("4");
        *at += 4;
        let v = if big_endian {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        };
        usize::try_from(v).map_err(|_| short())
    };
    let bytes = |at: &mut usize, n: usize| -> Result<Vec<u8>, String> {
        let b = data.get(*at..*at + n).ok_or_else(short)?.to_vec();
        *at += n;
        Ok(b)
    };
    let mut out = Vec::new();
    while at < data.len() {
        let n = int(&mut at)?;
        let name = String::from_utf8_lossy(&bytes(&mut at, n)?).into_owned();
        let _width = int(&mut at)?;
        let labels = int(&mut at)?;
        for _ in 0..labels {
            let n = int(&mut at)?;
            let value = bytes(&mut at, n)?;
            let n = int(&mut at)?;
            let label = bytes(&mut at, n)?;
            out.push(LongLabel {
                variable: name.clone(),
                value,
                label,
            });
        }
    }
    Ok(out)
}

/// One slot of a case as stored.
#[derive(Debug, Clone, Copy)]
enum Raw {
    Bytes([u8; 8]),
    /// A small integer the bytecode holds in its command.
    Number(f64),
    Spaces,
    Sysmis,
}

/// The cases, slot by slot.
struct Data {
    source: Box<dyn Read>,
    bytecode: bool,
    commands: [u8; 8],
    next: usize,
    ended: bool,
}

impl Data {
    /// The next case's slots, or None at the end of the data (only at a
    /// case's start). With `keep` false the slots are read and dropped.
    fn case(&mut self, dict: &Dictionary, keep: bool) -> Result<Option<Vec<Raw>>, String> {
        let n = dict.slots.len();
        let mut out = Vec::with_capacity(if keep { n } else { 0 });
        for i in 0..n {
            match self.slot(dict.bias)? {
                Some(raw) if keep => out.push(raw),
                Some(_) => {}
                None if i == 0 => return Ok(None),
                None => return Err("the data ends inside a case".into()),
            }
        }
        Ok(Some(out))
    }

    fn eight(&mut self) -> Result<Option<[u8; 8]>, String> {
        let mut b = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match self.source.read(&mut b[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        match got {
            0 => Ok(None),
            8 => Ok(Some(b)),
            _ => Err("the data ends inside a value".into()),
        }
    }

    fn slot(&mut self, bias: f64) -> Result<Option<Raw>, String> {
        if !self.bytecode {
            return Ok(self.eight()?.map(Raw::Bytes));
        }
        loop {
            if self.ended {
                return Ok(None);
            }
            if self.next == 8 {
                match self.eight()? {
                    Some(commands) => self.commands = commands,
                    None => return Ok(None),
                }
                self.next = 0;
            }
            let code = self.commands[self.next];
            self.next += 1;
            return Ok(Some(match code {
                0 => continue,
                1..=251 => Raw::Number(code as f64 - bias),
                252 => {
                    self.ended = true;
                    return Ok(None);
                }
                253 => match self.eight()? {
                    Some(b) => Raw::Bytes(b),
                    None => return Err("the data ends inside a value".into()),
                },
                254 => Raw::Spaces,
                255 => Raw::Sysmis,
            }));
        }
    }
}

/// Consecutive zlib streams read as one (a `.zsav`'s blocks).
struct ZlibBlocks<R: BufRead> {
    inner: Option<flate2::bufread::ZlibDecoder<R>>,
}

impl<R: BufRead> ZlibBlocks<R> {
    fn new(inner: R) -> Self {
        ZlibBlocks {
            inner: Some(flate2::bufread::ZlibDecoder::new(inner)),
        }
    }
}

impl<R: BufRead> Read for ZlibBlocks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(decoder) = self.inner.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This block is done: the next one starts where it ended.
            let mut rest = self.inner.take().expect("a decoder").into_inner();
            if !rest.fill_buf()?.is_empty() {
                self.inner = Some(flate2::bufread::ZlibDecoder::new(rest));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_maps_its_high_block() {
        assert_eq!(text(b"caf\xe9 \x80  ", Encoding::Windows1252), "café €");
        assert_eq!(
            text(b"\x93quoted\x94\0\0", Encoding::Windows1252),
            "“quoted”"
        );
        assert_eq!(text("tür ".as_bytes(), Encoding::Utf8), "tür");
    }

    #[test]
    fn encodings_are_named_or_refused() {
        assert_eq!(Encoding::named("UTF-8"), Ok(Encoding::Utf8));
        assert_eq!(Encoding::named("windows-1252"), Ok(Encoding::Windows1252));
        let refused = Encoding::named("Shift_JIS").expect_err("refused");
        assert!(refused.contains("Shift_JIS") && refused.contains("Unicode mode"));
    }

    #[test]
    fn missing_values_cover_what_they_declare() {
        let range = Missing::Range {
            low: -5.0,
            high: -1.0,
            also: Some(99.0),
        };
        assert!(range.covers(&Cell::Number(-5.0)) && range.covers(&Cell::Number(-1.0)));
        assert!(range.covers(&Cell::Number(99.0)) && !range.covers(&Cell::Number(1.0)));
        let values = Missing::Values(vec![Cell::Text("NA".into())]);
        assert!(values.covers(&Cell::Text("NA".into())));
        assert!(!values.covers(&Cell::Text("N".into())));
    }
}
