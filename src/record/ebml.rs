//! EBML, the binary layout Matroska is built on: element IDs, variable-length
//! sizes, the writers for the element kinds blackbox uses, the CRC-32 element
//! that Matroska defines for checking a master element's contents, and a
//! reader of element headers that never trusts its input.
//!
//! An element is an ID (1 to 4 bytes, its length in the leading zeros of the
//! first byte), a size (a variable-length integer of 1 to 8 bytes, all value
//! bits set meaning "unknown"), then that many bytes of body.

/// The 8-byte "unknown size" marker.
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// The CRC-32 element's ID; its body is 4 bytes, little-endian.
pub const CRC32: u32 = 0xBF;
/// The Void element's ID: padding that every reader skips.
pub const VOID: u32 = 0xEC;
/// Bytes in a CRC-32 element (ID, size, value).
pub const CRC32_LEN: usize = 6;

/// Appends an element ID (its own bytes, without leading zero bytes).
pub fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = match id {
        0..=0xFF => 3,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 1,
        _ => 0,
    };
    out.extend_from_slice(&bytes[skip..]);
}

/// `size` as a variable-length integer exactly `width` bytes wide (1-8).
/// The caller makes sure it fits (`size < 2^(7*width) - 1`).
pub fn size_bytes(size: u64, width: usize) -> Vec<u8> {
    let marked = size | (1u64 << (7 * width));
    marked.to_be_bytes()[8 - width..].to_vec()
}

/// Appends `size` in the fewest bytes that hold it.
pub fn put_size(out: &mut Vec<u8>, size: u64) {
    let width = (1..=8).find(|&w| size < (1u64 << (7 * w)) - 1).unwrap_or(8);
    out.extend_from_slice(&size_bytes(size, width));
}

/// An unsigned integer element in the fewest bytes.
pub fn put_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let width = 8 - (v.leading_zeros() / 8).min(7) as usize;
    put_uint_fixed(out, id, v, width);
}

/// An unsigned integer element exactly `width` bytes wide, so that a later
/// value can be patched in place without moving anything.
pub fn put_uint_fixed(out: &mut Vec<u8>, id: u32, v: u64, width: usize) {
    put_id(out, id);
    put_size(out, width as u64);
    out.extend_from_slice(&v.to_be_bytes()[8 - width..]);
}

/// A signed 8-byte integer element.
pub fn put_int(out: &mut Vec<u8>, id: u32, v: i64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// An 8-byte float element.
pub fn put_float(out: &mut Vec<u8>, id: u32, v: f64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// A string element.
pub fn put_str(out: &mut Vec<u8>, id: u32, s: &str) {
    put_id(out, id);
    put_size(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A master element holding `body`.
pub fn put_master(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A master element whose first child is a CRC-32 of the rest of its body.
pub fn put_master_crc(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, (CRC32_LEN + body.len()) as u64);
    out.extend_from_slice(&crc_element(body));
    out.extend_from_slice(body);
}

/// The CRC-32 element over `data`: IEEE CRC-32 (as zlib and Ethernet),
/// stored little-endian, as the Matroska specification defines it.
pub fn crc_element(data: &[u8]) -> [u8; CRC32_LEN] {
    let crc = crc32fast::hash(data).to_le_bytes();
    [0xBF, 0x84, crc[0], crc[1], crc[2], crc[3]]
}

/// A Void element of exactly `total` bytes (at least 2).
pub fn void(total: usize) -> Vec<u8> {
    let mut out = vec![0xEC];
    let width = if total.saturating_sub(2) < 127 { 1 } else { 8 };
    out.extend_from_slice(&size_bytes(total.saturating_sub(1 + width) as u64, width));
    out.resize(total.max(2), 0);
    out
}

/// An element header as read: the ID, the body's size (`None`: unknown),
/// and how many bytes the header took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u32,
    pub size: Option<u64>,
    pub len: usize,
}

/// Reads an element header from the start of `buf`. `None` when `buf` ends
/// inside it or its bytes cannot be a header (a zero byte, as preallocated
/// space reads, is never one).
pub fn read_header(buf: &[u8]) -> Option<Header> {
    let first = *buf.first()?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return None;
    }
    let id = buf
        .get(..id_len)?
        .iter()
        .fold(0u32, |a, &b| (a << 8) | u32::from(b));
    let s0 = *buf.get(id_len)?;
    let size_len = s0.leading_zeros() as usize + 1;
    if size_len > 8 {
        return None;
    }
    let rest = buf.get(id_len + 1..id_len + size_len)?;
    let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
    let mut value = u64::from(s0 & mask);
    let mut all_ones = (s0 & mask) == mask;
    for &b in rest {
        all_ones &= b == 0xFF;
        value = (value << 8) | u64::from(b);
    }
    Some(Header {
        id,
        size: (!all_ones).then_some(value),
        len: id_len + size_len,
    })
}

/// A big-endian unsigned integer of up to 8 bytes.
pub fn read_uint(bytes: &[u8]) -> Option<u64> {
    (bytes.len() <= 8).then(|| bytes.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
}

/// The children of a master element's body, in order, as (id, body). Stops
/// with `Err` at the first child that does not fit, so a damaged body is
/// noticed rather than half-read.
pub fn children(body: &[u8]) -> Children<'_> {
    Children { rest: body }
}

/// Iterator for [`children`].
pub struct Children<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<(u32, &'a [u8]), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = read_header(self.rest).and_then(|h| {
            let size = usize::try_from(h.size?).ok()?;
            let body = self.rest.get(h.len..h.len.checked_add(size)?)?;
            Some((h.id, body, h.len + size))
        });
        match parsed {
            Some((id, body, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok((id, body)))
            }
            None => {
                self.rest = &[];
                Some(Err(()))
            }
        }
    }
}

/// If `body` (a master element's body) starts with a CRC-32 element that
/// matches the rest of it, the rest; otherwise `None`.
pub fn checked_body(body: &[u8]) -> Option<&[u8]> {
    let (head, rest) = body.split_at_checked(CRC32_LEN)?;
    (head[..2] == [0xBF, 0x84] && head[2..] == crc32fast::hash(rest).to_le_bytes()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_voids() {
        assert_eq!(size_bytes(5, 1), vec![0x85]);
        assert_eq!(size_bytes(5, 8), vec![0x01, 0, 0, 0, 0, 0, 0, 5]);
        let mut v = Vec::new();
        put_size(&mut v, 200);
        assert_eq!(v, vec![0x40, 200]);
        for n in [2, 10, 128, 129, 200, 4000] {
            let v = void(n);
            assert_eq!(v.len(), n);
            let h = read_header(&v).unwrap();
            assert_eq!(h.id, VOID);
            assert_eq!(h.len as u64 + h.size.unwrap(), n as u64);
        }
    }

    #[test]
    fn headers_read_back_and_garbage_is_refused() {
        let mut out = Vec::new();
        put_uint_fixed(&mut out, 0x2A_D7B1, 1_000_000, 4);
        let h = read_header(&out).unwrap();
        assert_eq!(
            h,
            Header {
                id: 0x2A_D7B1,
                size: Some(4),
                len: 4
            }
        );
        assert_eq!(read_uint(&out[h.len..]), Some(1_000_000));
        let mut unknown = vec![0x1F, 0x43, 0xB6, 0x75];
        unknown.extend_from_slice(&UNKNOWN_SIZE);
        assert_eq!(read_header(&unknown).unwrap().size, None);
        assert_eq!(read_header(&[0x00, 0x81]), None, "zero padding");
        assert_eq!(read_header(&[0x1F, 0x43]), None, "cut short");
        assert_eq!(read_header(&[0xA3, 0x00]), None, "a size byte of zero");
    }

    #[test]
    fn crc_checked_masters() {
        let mut body = Vec::new();
        put_str(&mut body, 0x86, "V_MJPEG");
        let mut out = Vec::new();
        put_master_crc(&mut out, 0x1654_AE6B, &body);
        let h = read_header(&out).unwrap();
        let inner = &out[h.len..];
        assert_eq!(checked_body(inner), Some(&body[..]));
        let mut flipped = out.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x10;
        assert_eq!(checked_body(&flipped[h.len..]), None);
        // The check value of the IEEE CRC-32 ("123456789" -> 0xCBF43926).
        assert_eq!(crc_element(b"123456789")[2..], 0xCBF4_3926u32.to_le_bytes());
        let kids: Vec<_> = children(inner).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1], Ok((0x86, &b"V_MJPEG"[..])));
        assert_eq!(children(&[0x86, 0x85, b'x']).next(), Some(Err(())));
    }
}
