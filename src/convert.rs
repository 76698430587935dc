//! Pixel layouts: the padded planar [`I420`] image that mozjpeg's raw-data
//! interface reads, conversions into it from what cameras deliver (YUYV, NV12,
//! YU12), and the reverse packing the test pattern uses to imitate a camera.
//!
//! # Implementation
//! mozjpeg reads raw 4:2:0 data a whole MCU row (16 luma rows) at a time, and
//! takes each plane's row length as `width_in_blocks * 8`. So the luma plane's
//! stride is the width rounded up to 8, the chroma stride half the width
//! rounded up to 8, and the planes hold whole 16 (luma) / 8 (chroma) row
//! bands. Padding is filled by repeating the last real column and row, which
//! keeps the edge blocks smooth instead of ringing against black.
//!
//! 4:2:2 to 4:2:0 averages the chroma of each pair of rows, rounding half up.
//!
//! A camera mounted upside down is turned in the same pass: with `rotate`,
//! each source row is written to the mirrored row, back to front (one
//! monomorphised copy of each loop per direction, so the straight case pays
//! nothing).

use std::fmt;

use crate::frame::{PixelFormat, Size};

/// Why a buffer could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertError {
    /// The source buffer is shorter than its size and stride require.
    ShortBuffer { needed: usize, got: usize },
    /// The stride is smaller than one packed line.
    BadStride { stride: usize, min: usize },
    /// Odd sizes cannot be subsampled 4:2:0.
    OddSize(Size),
    /// The format is not a raw format (MJPEG is passed through, not converted).
    NotRaw(PixelFormat),
    /// A JPEG to caption could not be decoded, or is not the camera's size.
    Jpeg(String),
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortBuffer { needed, got } => {
                write!(f, "frame buffer too short: {got} bytes, need {needed}")
            }
            Self::BadStride { stride, min } => {
                write!(f, "line stride {stride} is less than a line ({min} bytes)")
            }
            Self::OddSize(s) => write!(f, "frame size {s} is odd; 4:2:0 needs even sizes"),
            Self::Jpeg(why) => write!(f, "cannot decode the JPEG to caption it: {why}"),
            Self::NotRaw(p) => write!(f, "{p} is not a raw pixel format"),
        }
    }
}

impl std::error::Error for ConvertError {}

fn round_up(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

/// A planar 4:2:0 image laid out for mozjpeg (see the module docs).
#[derive(Clone, Debug)]
pub struct I420 {
    size: Size,
    y_stride: usize,
    c_stride: usize,
    y_rows: usize,
    c_rows: usize,
    buf: Vec<u8>,
}

impl I420 {
    /// A black image of `size`; width and height must be even and non-zero.
    pub fn new(size: Size) -> Result<Self, ConvertError> {
        if size.width == 0 || size.height == 0 || size.width % 2 == 1 || size.height % 2 == 1 {
            return Err(ConvertError::OddSize(size));
        }
        let w = size.width as usize;
        let h = size.height as usize;
        let y_stride = round_up(w, 8);
        let c_stride = round_up(w / 2, 8);
        let y_rows = round_up(h, 16);
        let c_rows = y_rows / 2;
        let mut buf = vec![16u8; y_stride * y_rows + 2 * c_stride * c_rows];
        buf[y_stride * y_rows..].fill(128);
        Ok(Self {
            size,
            y_stride,
            c_stride,
            y_rows,
            c_rows,
            buf,
        })
    }

    pub fn size(&self) -> Size {
        self.size
    }
    pub fn y_stride(&self) -> usize {
        self.y_stride
    }
    pub fn c_stride(&self) -> usize {
        self.c_stride
    }

    /// The Y, U and V planes including padding.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let (y, c) = self.buf.split_at(self.y_stride * self.y_rows);
        let (u, v) = c.split_at(self.c_stride * self.c_rows);
        (y, u, v)
    }

    /// Mutable planes; after writing the visible area call [`I420::pad`].
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (y, c) = self.buf.split_at_mut(self.y_stride * self.y_rows);
        let (u, v) = c.split_at_mut(self.c_stride * self.c_rows);
        (y, u, v)
    }

    /// Copies `other`'s pixels into `self` (same size) without reallocating.
    pub fn copy_from(&mut self, other: &I420) {
        if self.size == other.size {
            self.buf.copy_from_slice(&other.buf);
        } else {
            *self = other.clone();
        }
    }

    /// Fills the padding by repeating the last visible column and row.
    pub fn pad(&mut self) {
        let w = self.size.width as usize;
        let h = self.size.height as usize;
        let (ys, cs, yr, cr) = (self.y_stride, self.c_stride, self.y_rows, self.c_rows);
        let (y, u, v) = self.planes_mut();
        pad_plane(y, ys, w, h, yr);
        pad_plane(u, cs, w / 2, h / 2, cr);
        pad_plane(v, cs, w / 2, h / 2, cr);
    }
}

fn pad_plane(plane: &mut [u8], stride: usize, w: usize, h: usize, rows: usize) {
    if stride > w {
        for row in plane.chunks_exact_mut(stride).take(h) {
            let last = row[w - 1];
            row[w..].fill(last);
        }
    }
    for r in h..rows {
        plane.copy_within((h - 1) * stride..h * stride, r * stride);
    }
}

fn check_len(data: &[u8], needed: usize) -> Result<(), ConvertError> {
    if data.len() < needed {
        Err(ConvertError::ShortBuffer {
            needed,
            got: data.len(),
        })
    } else {
        Ok(())
    }
}

fn check_stride(stride: usize, min: usize) -> Result<(), ConvertError> {
    if stride < min {
        Err(ConvertError::BadStride { stride, min })
    } else {
        Ok(())
    }
}

/// Converts one raw frame into `dst`, reallocating `dst` if the size changed.
/// `stride` is the bytes per line of the source's first plane.
/// Decodes a camera's JPEG into `img` (its size), for a caption on an
/// MJPEG camera: zune-jpeg gives full-resolution Y, Cb and Cr, and the
/// chroma is averaged over each 2x2 block.
pub fn jpeg_to_i420(jpeg: &[u8], img: &mut I420) -> Result<(), ConvertError> {
    use zune_jpeg::JpegDecoder;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
    let mut dec = JpegDecoder::new_with_options(std::io::Cursor::new(jpeg), options);
    let pixels = dec
        .decode()
        .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
    let (w, h) = dec
        .dimensions()
        .ok_or_else(|| ConvertError::Jpeg("no dimensions".into()))?;
    let size = img.size();
    if (w, h) != (size.width as usize, size.height as usize) || pixels.len() < w * h * 3 {
        return Err(ConvertError::Jpeg(format!(
            "{w}x{h}, the camera said {size}"
        )));
    }
    let (ys, cs) = (img.y_stride(), img.c_stride());
    let (yp, up, vp) = img.planes_mut();
    for row in 0..h {
        let src = &pixels[row * w * 3..(row + 1) * w * 3];
        for (x, px) in src.chunks_exact(3).enumerate() {
            yp[row * ys + x] = px[0];
        }
    }
    for row in 0..h / 2 {
        let a = &pixels[2 * row * w * 3..(2 * row + 1) * w * 3];
        let b = &pixels[(2 * row + 1) * w * 3..(2 * row + 2) * w * 3];
        for x in 0..w / 2 {
            let i = 2 * x * 3;
            let avg = |k: usize| {
                ((u16::from(a[i + k])
                    + u16::from(a[i + 3 + k])
                    + u16::from(b[i + k])
                    + u16::from(b[i + 3 + k])
                    + 2)
                    / 4) as u8
            };
            up[row * cs + x] = avg(1);
            vp[row * cs + x] = avg(2);
        }
    }
    img.pad();
    Ok(())
}

pub fn to_i420(
    format: PixelFormat,
    data: &[u8],
    size: Size,
    stride: usize,
    dst: &mut I420,
) -> Result<(), ConvertError> {
    to_i420_turned(format, data, size, stride, false, dst)
}

/// [`to_i420`], turned 180 degrees when `rotate` is set.
pub fn to_i420_turned(
    format: PixelFormat,
    data: &[u8],
    size: Size,
    stride: usize,
    rotate: bool,
    dst: &mut I420,
) -> Result<(), ConvertError> {
    if dst.size != size {
        *dst = I420::new(size)?;
    }
    match (format, rotate) {
        (PixelFormat::Yuyv, false) => yuyv_to_i420::<false>(data, stride, dst),
        (PixelFormat::Yuyv, true) => yuyv_to_i420::<true>(data, stride, dst),
        (PixelFormat::Nv12, false) => nv12_to_i420::<false>(data, stride, dst),
        (PixelFormat::Nv12, true) => nv12_to_i420::<true>(data, stride, dst),
        (PixelFormat::Yu12, false) => yu12_to_i420::<false>(data, stride, dst),
        (PixelFormat::Yu12, true) => yu12_to_i420::<true>(data, stride, dst),
        (PixelFormat::Mjpeg, _) => Err(ConvertError::NotRaw(format)),
    }?;
    dst.pad();
    Ok(())
}

/// Copies a row, back to front when `ROT`.
fn copy_row<const ROT: bool>(dst: &mut [u8], src: &[u8]) {
    if ROT {
        for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Where source row `r` of `rows` goes.
fn row<const ROT: bool>(r: usize, rows: usize) -> usize {
    if ROT { rows - 1 - r } else { r }
}

fn yuyv_to_i420<const ROT: bool>(
    src: &[u8],
    stride: usize,
    dst: &mut I420,
) -> Result<(), ConvertError> {
    let w = dst.size.width as usize;
    let h = dst.size.height as usize;
    check_stride(stride, w * 2)?;
    check_len(src, stride * (h - 1) + w * 2)?;
    let (ys, cs) = (dst.y_stride, dst.c_stride);
    let (y, u, v) = dst.planes_mut();
    let half = w / 2;
    for r in 0..h / 2 {
        let top = &src[2 * r * stride..][..w * 2];
        let bottom = &src[(2 * r + 1) * stride..][..w * 2];
        // Turned, the pair of rows lands mirrored and swapped: the source's
        // top row is the lower of the two.
        let pair = row::<ROT>(r, h / 2);
        let (first, second) = y[2 * pair * ys..][..2 * ys].split_at_mut(ys);
        let (y_top, y_bottom) = if ROT {
            (second, first)
        } else {
            (first, second)
        };
        let u_row = &mut u[pair * cs..][..half];
        let v_row = &mut v[pair * cs..][..half];
        for (i, (t, b)) in top.chunks_exact(4).zip(bottom.chunks_exact(4)).enumerate() {
            let (x0, x1, c) = if ROT {
                (w - 1 - 2 * i, w - 2 - 2 * i, half - 1 - i)
            } else {
                (2 * i, 2 * i + 1, i)
            };
            y_top[x0] = t[0];
            y_top[x1] = t[2];
            y_bottom[x0] = b[0];
            y_bottom[x1] = b[2];
            u_row[c] = ((u16::from(t[1]) + u16::from(b[1]) + 1) >> 1) as u8;
            v_row[c] = ((u16::from(t[3]) + u16::from(b[3]) + 1) >> 1) as u8;
        }
    }
    Ok(())
}

fn nv12_to_i420<const ROT: bool>(
    src: &[u8],
    stride: usize,
    dst: &mut I420,
) -> Result<(), ConvertError> {
    let w = dst.size.width as usize;
    let h = dst.size.height as usize;
    check_stride(stride, w)?;
    let uv_start = stride * h;
    check_len(src, uv_start + stride * (h / 2 - 1) + w)?;
    let (ys, cs) = (dst.y_stride, dst.c_stride);
    let (y, u, v) = dst.planes_mut();
    for r in 0..h {
        copy_row::<ROT>(
            &mut y[row::<ROT>(r, h) * ys..][..w],
            &src[r * stride..][..w],
        );
    }
    let half = w / 2;
    for r in 0..h / 2 {
        let uv = &src[uv_start + r * stride..][..w];
        let d = row::<ROT>(r, h / 2);
        let u_row = &mut u[d * cs..][..half];
        let v_row = &mut v[d * cs..][..half];
        for (i, pair) in uv.chunks_exact(2).enumerate() {
            let c = if ROT { half - 1 - i } else { i };
            u_row[c] = pair[0];
            v_row[c] = pair[1];
        }
    }
    Ok(())
}

fn yu12_to_i420<const ROT: bool>(
    src: &[u8],
    stride: usize,
    dst: &mut I420,
) -> Result<(), ConvertError> {
    let w = dst.size.width as usize;
    let h = dst.size.height as usize;
    check_stride(stride, w)?;
    // V4L2 single-planar YU12: chroma lines are half the luma stride.
    let c_src_stride = stride / 2;
    let u_start = stride * h;
    let v_start = u_start + c_src_stride * (h / 2);
    check_len(src, v_start + c_src_stride * (h / 2 - 1) + w / 2)?;
    let (ys, cs) = (dst.y_stride, dst.c_stride);
    let (y, u, v) = dst.planes_mut();
    for r in 0..h {
        copy_row::<ROT>(
            &mut y[row::<ROT>(r, h) * ys..][..w],
            &src[r * stride..][..w],
        );
    }
    for r in 0..h / 2 {
        let d = row::<ROT>(r, h / 2);
        copy_row::<ROT>(
            &mut u[d * cs..][..w / 2],
            &src[u_start + r * c_src_stride..][..w / 2],
        );
        copy_row::<ROT>(
            &mut v[d * cs..][..w / 2],
            &src[v_start + r * c_src_stride..][..w / 2],
        );
    }
    Ok(())
}

/// Packs an I420 image into a tightly packed buffer of `format` (what a
/// camera would deliver). Returns the stride of the packed first plane.
pub fn pack(img: &I420, format: PixelFormat, out: &mut Vec<u8>) -> Result<usize, ConvertError> {
    let w = img.size.width as usize;
    let h = img.size.height as usize;
    let (ys, cs) = (img.y_stride, img.c_stride);
    let (y, u, v) = img.planes();
    out.clear();
    match format {
        PixelFormat::Yuyv => {
            out.resize(w * h * 2, 0);
            for (r, line) in out.chunks_exact_mut(w * 2).enumerate() {
                let y_row = &y[r * ys..][..w];
                let u_row = &u[(r / 2) * cs..][..w / 2];
                let v_row = &v[(r / 2) * cs..][..w / 2];
                for (i, px) in line.chunks_exact_mut(4).enumerate() {
                    px[0] = y_row[2 * i];
                    px[1] = u_row[i];
                    px[2] = y_row[2 * i + 1];
                    px[3] = v_row[i];
                }
            }
            Ok(w * 2)
        }
        PixelFormat::Nv12 => {
            out.resize(w * h * 3 / 2, 0);
            let (luma, chroma) = out.split_at_mut(w * h);
            for (r, line) in luma.chunks_exact_mut(w).enumerate() {
                line.copy_from_slice(&y[r * ys..][..w]);
            }
            for (r, line) in chroma.chunks_exact_mut(w).enumerate() {
                for (i, pair) in line.chunks_exact_mut(2).enumerate() {
                    pair[0] = u[r * cs + i];
                    pair[1] = v[r * cs + i];
                }
            }
            Ok(w)
        }
        PixelFormat::Yu12 => {
            out.reserve(w * h * 3 / 2);
            for r in 0..h {
                out.extend_from_slice(&y[r * ys..][..w]);
            }
            for plane in [u, v] {
                for r in 0..h / 2 {
                    out.extend_from_slice(&plane[r * cs..][..w / 2]);
                }
            }
            Ok(w)
        }
        PixelFormat::Mjpeg => Err(ConvertError::NotRaw(format)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, non-smooth byte pattern so that swapped or shifted
    /// samples cannot go unnoticed.
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as u8
            })
            .collect()
    }

    /// The reference: visible planes computed sample by sample from the
    /// definition of each format, independent of the code under test.
    fn reference(
        format: PixelFormat,
        src: &[u8],
        w: usize,
        h: usize,
        stride: usize,
    ) -> [Vec<u8>; 3] {
        let mut y = vec![0; w * h];
        let mut u = vec![0; w * h / 4];
        let mut v = vec![0; w * h / 4];
        for row in 0..h {
            for col in 0..w {
                y[row * w + col] = match format {
                    PixelFormat::Yuyv => src[row * stride + col * 2],
                    _ => src[row * stride + col],
                };
            }
        }
        for row in 0..h / 2 {
            for col in 0..w / 2 {
                let (cu, cv) = match format {
                    PixelFormat::Yuyv => {
                        let a = 2 * row * stride + col * 4;
                        let b = (2 * row + 1) * stride + col * 4;
                        (
                            (src[a + 1] as u32 + src[b + 1] as u32).div_ceil(2) as u8,
                            (src[a + 3] as u32 + src[b + 3] as u32).div_ceil(2) as u8,
                        )
                    }
                    PixelFormat::Nv12 => {
                        let a = stride * h + row * stride + col * 2;
                        (src[a], src[a + 1])
                    }
                    PixelFormat::Yu12 => {
                        let cs = stride / 2;
                        let us = stride * h;
                        let vs = us + cs * h / 2;
                        (src[us + row * cs + col], src[vs + row * cs + col])
                    }
                    PixelFormat::Mjpeg => unreachable!(),
                };
                u[row * w / 2 + col] = cu;
                v[row * w / 2 + col] = cv;
            }
        }
        [y, u, v]
    }

    #[test]
    fn turned_conversions_are_the_straight_ones_upside_down() {
        for format in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Yu12] {
            for (w, h) in [(640usize, 480usize), (100, 38)] {
                let packed = if format == PixelFormat::Yuyv {
                    w * 2
                } else {
                    w
                };
                let stride = packed + 32;
                let size = Size::new(w as u32, h as u32);
                let src = noise(src_len(format, h, stride), (w + h) as u32);
                let mut straight = I420::new(size).unwrap();
                to_i420(format, &src, size, stride, &mut straight).unwrap();
                let mut turned = I420::new(size).unwrap();
                to_i420_turned(format, &src, size, stride, true, &mut turned).unwrap();
                // A plane turned half way round is its pixels in reverse.
                let expected = visible(&straight).map(|mut p| {
                    p.reverse();
                    p
                });
                assert_eq!(visible(&turned), expected, "{format} {w}x{h}");
            }
        }
    }

    fn visible(img: &I420) -> [Vec<u8>; 3] {
        let w = img.size().width as usize;
        let h = img.size().height as usize;
        let (y, u, v) = img.planes();
        let take = |p: &[u8], stride: usize, w: usize, h: usize| {
            (0..h)
                .flat_map(|r| p[r * stride..][..w].to_vec())
                .collect::<Vec<u8>>()
        };
        [
            take(y, img.y_stride(), w, h),
            take(u, img.c_stride(), w / 2, h / 2),
            take(v, img.c_stride(), w / 2, h / 2),
        ]
    }

    fn src_len(format: PixelFormat, h: usize, stride: usize) -> usize {
        match format {
            PixelFormat::Yuyv => stride * h,
            _ => stride * h * 3 / 2,
        }
    }

    #[test]
    fn conversions_match_the_reference() {
        let sizes = [(1920, 1080), (1280, 720), (640, 480), (640, 360), (100, 38)];
        for format in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Yu12] {
            for (w, h) in sizes {
                let packed = if format == PixelFormat::Yuyv {
                    w * 2
                } else {
                    w
                };
                // Tight lines, and lines with driver padding at the end.
                for stride in [packed, packed + 64] {
                    let src = noise(src_len(format, h, stride), (w * h + stride) as u32);
                    let mut img = I420::new(Size::new(w as u32, h as u32)).unwrap();
                    to_i420(
                        format,
                        &src,
                        Size::new(w as u32, h as u32),
                        stride,
                        &mut img,
                    )
                    .unwrap();
                    assert_eq!(
                        visible(&img),
                        reference(format, &src, w, h, stride),
                        "{format} {w}x{h} stride {stride}"
                    );
                }
            }
        }
    }

    #[test]
    fn planes_are_padded_for_mozjpeg() {
        for (w, h) in [(1920, 1080), (1280, 720), (640, 480), (640, 360), (100, 38)] {
            let img = I420::new(Size::new(w, h)).unwrap();
            let (y, u, _) = img.planes();
            assert_eq!(img.y_stride() % 8, 0);
            assert_eq!(img.c_stride() % 8, 0);
            assert_eq!((y.len() / img.y_stride()) % 16, 0, "{w}x{h}");
            assert_eq!((u.len() / img.c_stride()) % 8, 0, "{w}x{h}");
        }
    }

    #[test]
    fn padding_repeats_the_edges() {
        let (w, h) = (100usize, 38usize);
        let src = noise(w * 2 * h, 7);
        let mut img = I420::new(Size::new(w as u32, h as u32)).unwrap();
        to_i420(PixelFormat::Yuyv, &src, img.size(), w * 2, &mut img).unwrap();
        let ys = img.y_stride();
        let (y, _, _) = img.planes();
        assert_eq!(y[ys - 1], y[w - 1], "right edge");
        let rows = y.len() / ys;
        assert_eq!(
            y[(rows - 1) * ys..][..w],
            y[(h - 1) * ys..][..w],
            "bottom edge"
        );
    }

    #[test]
    fn pack_then_convert_round_trips() {
        let size = Size::new(640, 360);
        let mut img = I420::new(size).unwrap();
        {
            let (y, u, v) = img.planes_mut();
            y.copy_from_slice(&noise(y.len(), 1));
            u.copy_from_slice(&noise(u.len(), 2));
            v.copy_from_slice(&noise(v.len(), 3));
        }
        img.pad();
        for format in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Yu12] {
            let mut packed = Vec::new();
            let stride = pack(&img, format, &mut packed).unwrap();
            let mut back = I420::new(size).unwrap();
            to_i420(format, &packed, size, stride, &mut back).unwrap();
            assert_eq!(visible(&back), visible(&img), "{format}");
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let size = Size::new(640, 480);
        let mut img = I420::new(size).unwrap();
        let short = vec![0u8; 1000];
        assert!(matches!(
            to_i420(PixelFormat::Yuyv, &short, size, 1280, &mut img),
            Err(ConvertError::ShortBuffer { .. })
        ));
        assert!(matches!(
            to_i420(PixelFormat::Nv12, &short, size, 100, &mut img),
            Err(ConvertError::BadStride { .. })
        ));
        assert!(matches!(
            I420::new(Size::new(641, 480)),
            Err(ConvertError::OddSize(_))
        ));
        assert!(matches!(
            to_i420(PixelFormat::Mjpeg, &short, size, 0, &mut img),
            Err(ConvertError::NotRaw(_))
        ));
    }
}
