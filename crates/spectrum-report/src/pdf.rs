//! The PDF: a small page-layout engine over krilla. Text is real text in the
//! bundled DejaVu fonts (selectable, searchable); charts are embedded as
//! vector SVG; every page but the title page is numbered; the contents page
//! links to each section, and the outline (bookmarks) mirrors it. Layout runs
//! twice: the first pass finds the page of every section for the contents.

use std::sync::Arc;

use ab_glyph::{Font as _, FontRef};
use krilla::Document;
use krilla::annotation::{Annotation, LinkAnnotation, Target};
use krilla::color::rgb;
use krilla::destination::Destination;
use krilla::destination::XyzDestination;
use krilla::geom::{PathBuilder, Point, Rect, Size};
use krilla::metadata::{DateTime, Metadata};
use krilla::outline::{Outline, OutlineNode};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use krilla_svg::{SurfaceExt, SvgSettings};

use crate::{ReportError, Result, fonts};

/// A4 in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 54.0;
const BODY: f32 = 10.0;
const LINE: f32 = 1.45;

/// What a section holds, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(String),
    Text(String),
    /// Monospaced, wrapped at the page width (prompts, JSON).
    Code(String),
    /// Column widths are fractions of the text width.
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        widths: Vec<f32>,
    },
    /// An SVG figure scaled to the text width.
    Figure {
        svg: String,
        caption: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

/// A whole document: a title page, a contents page, one section after another.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSpec {
    pub title: String,
    /// Lines under the title (runs, models, hashes...).
    pub title_lines: Vec<String>,
    /// (year, month, day, hour, minute, second) in UTC, written as the creation date.
    pub created: (u16, u8, u8, u8, u8, u8),
    pub producer: String,
    pub sections: Vec<Section>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Face {
    Sans,
    Bold,
    Mono,
}

/// One thing drawn on a page.
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        face: Face,
        text: String,
        grey: bool,
    },
    Rule {
        x1: f32,
        x2: f32,
        y: f32,
    },
    Shade {
        rect: (f32, f32, f32, f32),
    },
    Svg {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        tree: usize,
    },
    /// A link to the page of section `section`.
    Link {
        rect: (f32, f32, f32, f32),
        section: usize,
    },
}

struct Measure {
    sans: FontRef<'static>,
    bold: FontRef<'static>,
    mono: FontRef<'static>,
}

impl Measure {
    fn new() -> Result<Measure> {
        let load = |b: &'static [u8]| {
            FontRef::try_from_slice(b).map_err(|e| ReportError::Pdf(format!("bundled font: {e}")))
        };
        Ok(Measure {
            sans: load(fonts::SANS)?,
            bold: load(fonts::SANS_BOLD)?,
            mono: load(fonts::MONO)?,
        })
    }

    fn width(&self, text: &str, size: f32, face: Face) -> f32 {
        let font = match face {
            Face::Sans => &self.sans,
            Face::Bold => &self.bold,
            Face::Mono => &self.mono,
        };
        // Advances are in font units; a point size is one em.
        let em = font.units_per_em().unwrap_or(1000.0);
        text.chars()
            .map(|c| font.h_advance_unscaled(font.glyph_id(c)))
            .sum::<f32>()
            * size
            / em
    }

    /// Greedy word wrap to `width`; long words are cut.
    fn wrap(&self, text: &str, size: f32, face: Face, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            for word in paragraph.split(' ') {
                let candidate = if line.is_empty() {
                    word.to_string()
                } else {
                    format!("{line} {word}")
                };
                if self.width(&candidate, size, face) <= width
                    || line.is_empty() && self.width(word, size, face) <= width
                {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                // A word wider than the line is cut into pieces.
                let mut piece = String::new();
                for c in word.chars() {
                    piece.push(c);
                    if self.width(&piece, size, face) > width {
                        piece.pop();
                        lines.push(std::mem::take(&mut piece));
                        piece.push(c);
                    }
                }
                line = piece;
            }
            lines.push(line);
        }
        lines
    }

    /// `text` cut with an ellipsis to fit `width`.
    fn fit(&self, text: &str, size: f32, face: Face, width: f32) -> String {
        if self.width(text, size, face) <= width {
            return text.to_string();
        }
        let mut s: String = text.to_string();
        while !s.is_empty() && self.width(&format!("{s}…"), size, face) > width {
            s.pop();
        }
        format!("{s}…")
    }
}

/// Lays the document out: pages of ops, and the page index of each section.
struct Layout<'m> {
    m: &'m Measure,
    pages: Vec<Vec<Op>>,
    y: f32,
    section_pages: Vec<usize>,
    trees: Vec<(String, f32, f32)>,
}

impl<'m> Layout<'m> {
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    fn push(&mut self, op: Op) {
        self.pages.last_mut().expect("a page").push(op);
    }

    fn room(&mut self, height: f32) {
        if self.y + height > PAGE_H - MARGIN - 20.0 {
            self.new_page();
        }
    }

    fn text_line(&mut self, text: &str, size: f32, face: Face, x: f32) {
        let h = size * LINE;
        self.room(h);
        self.push(Op::Text {
            x,
            y: self.y + size,
            size,
            face,
            text: text.to_string(),
            grey: false,
        });
        self.y += h;
    }

    fn paragraph(&mut self, text: &str, size: f32, face: Face) {
        let width = PAGE_W - 2.0 * MARGIN;
        for line in self.m.wrap(text, size, face, width) {
            self.text_line(&line, size, face, MARGIN);
        }
        self.y += size * 0.5;
    }

    fn table(&mut self, header: &[String], rows: &[Vec<String>], widths: &[f32]) {
        let width = PAGE_W - 2.0 * MARGIN;
        let size = 8.5;
        let h = size * 1.6;
        let xs: Vec<f32> = widths
            .iter()
            .scan(MARGIN, |x, w| {
                let at = *x;
                *x += w * width;
                Some(at)
            })
            .collect();
        let draw_row = |l: &mut Layout, cells: &[String], face: Face| {
            for (i, cell) in cells.iter().enumerate() {
                let w = widths.get(i).copied().unwrap_or(0.1) * width - 4.0;
                let text = l.m.fit(cell, size, face, w);
                let x = xs.get(i).copied().unwrap_or(MARGIN);
                l.push(Op::Text {
                    x,
                    y: l.y + size,
                    size,
                    face,
                    text,
                    grey: false,
                });
            }
            l.y += h;
        };
        self.room(h * 2.0);
        draw_row(self, header, Face::Bold);
        self.push(Op::Rule {
            x1: MARGIN,
            x2: PAGE_W - MARGIN,
            y: self.y - 3.0,
        });
        for (r, row) in rows.iter().enumerate() {
            if self.y + h > PAGE_H - MARGIN - 20.0 {
                self.new_page();
                draw_row(self, header, Face::Bold);
                self.push(Op::Rule {
                    x1: MARGIN,
                    x2: PAGE_W - MARGIN,
                    y: self.y - 3.0,
                });
            }
            if r % 2 == 1 {
                self.push(Op::Shade {
                    rect: (MARGIN, self.y - 2.0, width, h),
                });
            }
            draw_row(self, row, Face::Sans);
        }
        self.y += 8.0;
    }

    fn figure(&mut self, svg: &str, caption: &str) -> Result<()> {
        let (w, h) = svg_size(svg)?;
        let width = PAGE_W - 2.0 * MARGIN;
        let mut scale = width / w;
        let max_h = PAGE_H - 2.0 * MARGIN - 60.0;
        if h * scale > max_h {
            scale = max_h / h;
        }
        self.room(h * scale + 24.0);
        let tree = self.trees.len();
        self.trees.push((svg.to_string(), w, h));
        self.push(Op::Svg {
            x: MARGIN,
            y: self.y,
            w: w * scale,
            h: h * scale,
            tree,
        });
        self.y += h * scale + 4.0;
        if !caption.is_empty() {
            for line in self.m.wrap(caption, 8.5, Face::Sans, width) {
                self.room(8.5 * LINE);
                self.push(Op::Text {
                    x: MARGIN,
                    y: self.y + 8.5,
                    size: 8.5,
                    face: Face::Sans,
                    text: line,
                    grey: true,
                });
                self.y += 8.5 * LINE;
            }
        }
        self.y += 10.0;
        Ok(())
    }
}

/// Width and height of an SVG document from its root element.
fn svg_size(svg: &str) -> Result<(f32, f32)> {
    let attr = |name: &str| -> Option<f32> {
        let start = svg.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = svg[start..].find('"')? + start;
        svg[start..end].trim_end_matches("px").parse().ok()
    };
    match (attr("width"), attr("height")) {
        (Some(w), Some(h)) if w > 0.0 && h > 0.0 => Ok((w, h)),
        _ => Err(ReportError::Pdf(
            "a figure's SVG has no width and height".into(),
        )),
    }
}

fn layout<'m>(m: &'m Measure, spec: &DocumentSpec, section_pages: &[usize]) -> Result<Layout<'m>> {
    let mut l = Layout {
        m,
        pages: Vec::new(),
        y: MARGIN,
        section_pages: Vec::new(),
        trees: Vec::new(),
    };
    // Title page.
    l.new_page();
    l.y = 200.0;
    for line in m.wrap(&spec.title, 24.0, Face::Bold, PAGE_W - 2.0 * MARGIN) {
        l.text_line(&line, 24.0, Face::Bold, MARGIN);
    }
    l.y += 16.0;
    for line in &spec.title_lines {
        l.paragraph(line, BODY, Face::Sans);
    }
    // Contents.
    l.new_page();
    l.text_line("Contents", 16.0, Face::Bold, MARGIN);
    l.y += 6.0;
    for (i, s) in spec.sections.iter().enumerate() {
        let page = section_pages
            .get(i)
            .map_or(String::new(), |p| (p + 1).to_string());
        let y = l.y;
        l.text_line(&format!("{}. {}", i + 1, s.title), 11.0, Face::Sans, MARGIN);
        let w = m.width(&page, 11.0, Face::Sans);
        l.push(Op::Text {
            x: PAGE_W - MARGIN - w,
            y: y + 11.0,
            size: 11.0,
            face: Face::Sans,
            text: page,
            grey: false,
        });
        l.push(Op::Link {
            rect: (MARGIN, y, PAGE_W - 2.0 * MARGIN, 11.0 * LINE),
            section: i,
        });
    }
    for (i, s) in spec.sections.iter().enumerate() {
        l.new_page();
        l.section_pages.push(l.pages.len() - 1);
        l.text_line(&format!("{}. {}", i + 1, s.title), 16.0, Face::Bold, MARGIN);
        l.y += 6.0;
        for block in &s.blocks {
            match block {
                Block::Heading(t) => {
                    l.y += 4.0;
                    l.room(40.0);
                    l.text_line(t, 12.0, Face::Bold, MARGIN);
                    l.y += 2.0;
                }
                Block::Text(t) => l.paragraph(t, BODY, Face::Sans),
                Block::Code(t) => {
                    for line in m.wrap(t, 8.0, Face::Mono, PAGE_W - 2.0 * MARGIN) {
                        l.text_line(&line, 8.0, Face::Mono, MARGIN);
                    }
                    l.y += 6.0;
                }
                Block::Table {
                    header,
                    rows,
                    widths,
                } => l.table(header, rows, widths),
                Block::Figure { svg, caption } => l.figure(svg, caption)?,
            }
        }
    }
    Ok(l)
}

/// Renders the document. The same spec gives the same bytes.
pub fn render(spec: &DocumentSpec) -> Result<Vec<u8>> {
    let m = Measure::new()?;
    let first = layout(&m, spec, &[])?;
    let l = layout(&m, spec, &first.section_pages)?;
    let total = l.pages.len();
    let font = |b: &'static [u8]| {
        Font::new(b.to_vec().into(), 0).ok_or_else(|| ReportError::Pdf("bundled font".into()))
    };
    let (sans, bold, mono) = (
        font(fonts::SANS)?,
        font(fonts::SANS_BOLD)?,
        font(fonts::MONO)?,
    );
    let mut options = usvg::Options::default();
    {
        let db = Arc::make_mut(&mut options.fontdb);
        db.load_font_data(fonts::SANS.to_vec());
        db.load_font_data(fonts::SANS_BOLD.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
    }
    let trees = l
        .trees
        .iter()
        .map(|(svg, _, _)| {
            usvg::Tree::from_str(svg, &options)
                .map_err(|e| ReportError::Pdf(format!("a figure's SVG does not parse: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut doc = Document::new();
    let (y, mo, d, h, mi, s) = spec.created;
    doc.set_metadata(
        Metadata::new()
            .title(spec.title.clone())
            .producer(spec.producer.clone())
            .creator(spec.producer.clone())
            .creation_date(
                DateTime::new(y)
                    .month(mo)
                    .day(d)
                    .hour(h)
                    .minute(mi)
                    .second(s),
            ),
    );
    let mut outline = Outline::new();
    for (i, s) in spec.sections.iter().enumerate() {
        let page = l.section_pages[i];
        outline.push_child(OutlineNode::new(
            format!("{}. {}", i + 1, s.title),
            XyzDestination::new(page, Point::from_xy(0.0, 0.0)),
        ));
    }
    doc.set_outline(outline);
    for (index, ops) in l.pages.iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
            .ok_or_else(|| ReportError::Pdf("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        for op in ops {
            if let Op::Link {
                rect: (x, y, w, h),
                section,
            } = op
            {
                let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) else {
                    continue;
                };
                let dest = XyzDestination::new(l.section_pages[*section], Point::from_xy(0.0, 0.0));
                page.add_annotation(Annotation::new_link(
                    LinkAnnotation::new(rect, Target::Destination(Destination::Xyz(dest))),
                    Some(format!("Go to section {}", section + 1)),
                ));
            }
        }
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    face,
                    text,
                    grey,
                } => {
                    let f = match face {
                        Face::Sans => sans.clone(),
                        Face::Bold => bold.clone(),
                        Face::Mono => mono.clone(),
                    };
                    let c = if *grey { 90 } else { 20 };
                    surface.set_fill(Some(Fill {
                        paint: rgb::Color::new(c, c, c).into(),
                        ..Fill::default()
                    }));
                    surface.draw_text(
                        Point::from_xy(*x, *y),
                        f,
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Rule { x1, x2, y } => {
                    let mut pb = PathBuilder::new();
                    pb.move_to(*x1, *y);
                    pb.line_to(*x2, *y);
                    if let Some(path) = pb.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            width: 0.6,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                    }
                }
                Op::Shade { rect: (x, y, w, h) } => {
                    let mut pb = PathBuilder::new();
                    if let Some(r) = Rect::from_xywh(*x, *y, *w, *h) {
                        pb.push_rect(r);
                    }
                    if let Some(path) = pb.finish() {
                        surface.set_stroke(None);
                        surface.set_fill(Some(Fill {
                            paint: rgb::Color::new(244, 244, 244).into(),
                            ..Fill::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Svg { x, y, w, h, tree } => {
                    surface.push_transform(&krilla::geom::Transform::from_translate(*x, *y));
                    let size = Size::from_wh(*w, *h)
                        .ok_or_else(|| ReportError::Pdf("figure size".into()))?;
                    surface
                        .draw_svg(
                            &trees[*tree],
                            size,
                            SvgSettings {
                                embed_text: true,
                                ..SvgSettings::default()
                            },
                        )
                        .ok_or_else(|| ReportError::Pdf("a figure could not be drawn".into()))?;
                    surface.pop();
                }
                Op::Link { .. } => {}
            }
        }
        if index > 0 {
            let label = format!("{} / {}", index + 1, total);
            let w = m.width(&label, 8.5, Face::Sans);
            surface.set_fill(Some(Fill {
                paint: rgb::Color::new(90, 90, 90).into(),
                ..Fill::default()
            }));
            surface.draw_text(
                Point::from_xy((PAGE_W - w) / 2.0, PAGE_H - 30.0),
                sans.clone(),
                8.5,
                &label,
                false,
                TextDirection::Auto,
            );
        }
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| ReportError::Pdf(format!("{e:?}")))
}
