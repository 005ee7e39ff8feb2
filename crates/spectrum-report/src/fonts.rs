//! The bundled fonts (DejaVu, see assets/fonts/LICENSE-DejaVu.txt): charts and
//! the PDF look the same on every machine, with no system font lookup.

pub static SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
pub static SANS_BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");
pub static MONO: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansMono.ttf");
