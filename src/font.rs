//! A 5x7 bitmap font for text burned into frames: the test pattern's
//! timestamp, the "NO SIGNAL" placeholder and the caption, and its reader
//! (for the tests). Digits, capital letters and a
//! few symbols; anything else draws as a space.

/// Glyph width and height in font pixels, and the advance between glyphs.
pub const GLYPH_W: usize = 5;
pub const GLYPH_H: usize = 7;
pub const ADVANCE: usize = 6;

/// Seven rows per glyph; bit 4 is the leftmost column.
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        _ => [0; GLYPH_H],
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    let n = text.chars().count();
    if n == 0 { 0 } else { (n * ADVANCE - 1) * scale }
}

/// Height in pixels of one line at `scale`.
pub fn text_height(scale: usize) -> usize {
    GLYPH_H * scale
}

/// Draws `text` into an 8-bit plane (`stride` bytes per row, `width` x
/// `height` visible) with its top-left corner at (`x`, `y`), each font pixel
/// a `scale` x `scale` square set to `value`. Clipped at the plane's edges.
#[allow(clippy::too_many_arguments)]
pub fn draw_text(
    plane: &mut [u8],
    stride: usize,
    width: usize,
    height: usize,
    x: usize,
    y: usize,
    scale: usize,
    text: &str,
    value: u8,
) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i * ADVANCE * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    let py = y + row * scale + dy;
                    if py >= height {
                        break;
                    }
                    let px0 = gx + col * scale;
                    if px0 >= width {
                        break;
                    }
                    let px1 = (px0 + scale).min(width);
                    plane[py * stride + px0..py * stride + px1].fill(value);
                }
            }
        }
    }
}

/// Every character the font draws (space included).
const CHARSET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ:.-#/ ";

/// Reads text drawn by [`draw_text`] at (`x`, `y`) and `scale` back from a
/// plane (decoded, so not exact): each font pixel is sampled at its centre
/// against the midpoint between the darkest and brightest samples, and
/// each cell is the glyph that differs in the fewest pixels (at most 3 of
/// 35). Stops at the plane's edge, at a cell that is no glyph, or after
/// three blank cells; trailing spaces are dropped.
pub fn read_text(
    plane: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    x: usize,
    y: usize,
    scale: usize,
) -> String {
    let sample = |px: usize, py: usize| -> Option<u8> {
        (px < width && py < height).then(|| plane[py * stride + px])
    };
    let mut cells: Vec<Vec<u8>> = Vec::new();
    let mut gx = x;
    'cells: while gx + GLYPH_W * scale <= width {
        let mut cell = Vec::with_capacity(GLYPH_W * GLYPH_H);
        for row in 0..GLYPH_H {
            for col in 0..GLYPH_W {
                match sample(gx + col * scale + scale / 2, y + row * scale + scale / 2) {
                    Some(v) => cell.push(v),
                    None => break 'cells,
                }
            }
        }
        cells.push(cell);
        gx += ADVANCE * scale;
    }
    let (lo, hi) = cells
        .iter()
        .flatten()
        .fold((u8::MAX, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi <= lo.saturating_add(40) {
        return String::new();
    }
    let mid = (u16::from(lo) + u16::from(hi)) / 2;
    let mut out = String::new();
    let mut blanks = 0;
    for cell in cells {
        let bits: Vec<bool> = cell.iter().map(|&v| u16::from(v) > mid).collect();
        let best = CHARSET
            .chars()
            .map(|c| {
                let g = glyph(c);
                let diff = (0..GLYPH_H * GLYPH_W)
                    .filter(|&i| (g[i / GLYPH_W] & (0x10 >> (i % GLYPH_W)) != 0) != bits[i])
                    .count();
                (diff, c)
            })
            .min();
        // A cell that is no glyph is past the text's end (or damage: what
        // was read so far is all that is sure).
        let c = match best {
            Some((d, c)) if d <= 3 => c,
            _ => break,
        };
        blanks = if c == ' ' { blanks + 1 } else { 0 };
        if blanks == 3 {
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_and_clips() {
        let (w, h) = (40, 10);
        let mut plane = vec![0u8; w * h];
        draw_text(&mut plane, w, w, h, 0, 0, 1, "1", 255);
        // '1' has its stem in column 2 on rows 1..6.
        assert_eq!(plane[3 * w + 2], 255);
        assert_eq!(plane[3 * w], 0);
        // Drawing past the edges must not panic.
        draw_text(&mut plane, w, w, h, 35, 5, 3, "NO SIGNAL", 255);
        assert_eq!(text_width("AB", 2), 22);
    }

    #[test]
    fn text_reads_back() {
        let (w, h) = (400, 40);
        let mut plane = vec![16u8; w * h];
        let text = "2026-12-05 20:32:41 UTC  54 KM/H";
        draw_text(&mut plane, w, w, h, 4, 4, 2, text, 235);
        assert_eq!(read_text(&plane, w, w, h, 4, 4, 2), text);
        assert_eq!(read_text(&vec![16u8; w * h], w, w, h, 4, 4, 2), "");
    }
}
