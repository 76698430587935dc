//! Client-side helpers shared by blackbox's host tests and the tests that run
//! inside the VMs: a real HTTP client (ureq), a reader for the
//! `multipart/x-mixed-replace` MJPEG stream, and JPEG decoding (zune-jpeg).
//! Nothing here knows blackbox's internals; it talks to it as a browser would.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Response headers, names in lower case.
pub type Headers = HashMap<String, String>;

fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build()
        .into()
}

fn headers_of<B>(res: &ureq::http::Response<B>) -> Headers {
    res.headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

/// Sends a request without a body: (status, headers, body).
pub fn request(method: &str, url: &str) -> Result<(u16, Headers, Vec<u8>), String> {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .body(())
        .map_err(|e| e.to_string())?;
    let mut res = agent(Some(Duration::from_secs(10)))
        .run(req)
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let headers = headers_of(&res);
    let code = res.status().as_u16();
    let body = res.body_mut().read_to_vec().map_err(|e| e.to_string())?;
    Ok((code, headers, body))
}

/// Sends `body` with `headers`: (status, body as text). No redirects are
/// followed.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), String> {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.to_string()).map_err(|e| e.to_string())?;
    let res = agent(Some(Duration::from_secs(30)))
        .run(req)
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let code = res.status().as_u16();
    Ok((code, res.into_body().read_to_string().unwrap_or_default()))
}

/// GET: (status, headers, body).
pub fn get(url: &str) -> Result<(u16, Headers, Vec<u8>), String> {
    request("GET", url)
}

/// GET a JSON document.
pub fn get_json(url: &str) -> Result<serde_json::Value, String> {
    let (code, _, body) = get(url)?;
    if code != 200 {
        return Err(format!("GET {url}: HTTP {code}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))
}

/// Why the next part could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The server ended the stream (or closed the connection) between parts.
    End,
    /// The connection failed.
    Io(String),
    /// The bytes are not a well-formed multipart stream.
    Framing(String),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::End => f.write_str("end of stream"),
            Self::Io(e) => write!(f, "stream I/O error: {e}"),
            Self::Framing(e) => write!(f, "bad MJPEG framing: {e}"),
        }
    }
}

/// One part of a multipart MJPEG stream.
pub struct Part {
    pub headers: Headers,
    pub data: Vec<u8>,
}

/// Reads parts from `/video_feed` (any multipart/x-mixed-replace body),
/// checking the framing as it goes.
pub struct MjpegReader {
    pub headers: Headers,
    reader: BufReader<Box<dyn Read + Send>>,
    boundary: String,
    started: bool,
}

impl MjpegReader {
    pub fn open(url: &str) -> Result<MjpegReader, String> {
        Self::open_with(url, &[])
    }

    /// Like [`Self::open`], with extra request headers (a session cookie).
    pub fn open_with(url: &str, headers: &[(&str, &str)]) -> Result<MjpegReader, String> {
        let mut req = agent(None).get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.call().map_err(|e| format!("GET {url}: {e}"))?;
        if res.status().as_u16() != 200 {
            return Err(format!("GET {url}: HTTP {}", res.status()));
        }
        let headers = headers_of(&res);
        let ct = headers.get("content-type").cloned().unwrap_or_default();
        let boundary = ct
            .split("boundary=")
            .nth(1)
            .ok_or_else(|| format!("no boundary in content-type {ct:?}"))?
            .trim_matches('"')
            .to_string();
        let reader: Box<dyn Read + Send> = Box::new(res.into_body().into_reader());
        Ok(MjpegReader {
            headers,
            reader: BufReader::new(reader),
            boundary,
            started: false,
        })
    }

    /// One line; `at_start` says whether the end of the stream here is a
    /// clean end (between parts) rather than a truncated part.
    fn line(&mut self, at_start: bool) -> Result<String, StreamError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) if at_start => Err(StreamError::End),
            Ok(0) => Err(StreamError::Framing(
                "the stream ended inside a part".into(),
            )),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => Err(StreamError::Io(e.to_string())),
        }
    }

    /// The next part.
    pub fn next_part(&mut self) -> Result<Part, StreamError> {
        let framing = |m: String| Err(StreamError::Framing(m));
        let delimiter = format!("--{}", self.boundary);
        if !self.started {
            let first = self.line(true)?;
            if first != delimiter {
                return framing(format!("stream starts with {first:?}, not {delimiter:?}"));
            }
            self.started = true;
        }
        let mut headers = Headers::new();
        let mut first_line = true;
        loop {
            let line = self.line(first_line)?;
            first_line = false;
            if line.is_empty() {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                return framing(format!("bad part header {line:?}"));
            };
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let Some(len) = headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        else {
            return framing("part without Content-Length".into());
        };
        let mut data = vec![0u8; len];
        self.reader
            .read_exact(&mut data)
            .map_err(|e| StreamError::Io(e.to_string()))?;
        let blank = self.line(false)?;
        if !blank.is_empty() {
            return framing(format!("part data followed by {blank:?}, not CRLF"));
        }
        let next = self.line(false)?;
        if next != delimiter {
            return framing(format!("part followed by {next:?}, not the boundary"));
        }
        Ok(Part { headers, data })
    }
}

/// Decodes a JPEG's luma: (pixels, width, height).
pub fn decode_luma(jpeg: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut dec = JpegDecoder::new_with_options(std::io::Cursor::new(jpeg), options);
    let pixels = dec
        .decode()
        .map_err(|e| format!("JPEG does not decode: {e:?}"))?;
    let info = dec.info().ok_or("JPEG without image info")?;
    Ok((pixels, info.width as usize, info.height as usize))
}

/// A JPEG's width and height from its frame header (SOF), without decoding.
pub fn jpeg_dimensions(jpeg: &[u8]) -> Option<(usize, usize)> {
    if jpeg.len() < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
        return None;
    }
    let mut i = 2;
    while i + 9 < jpeg.len() {
        if jpeg[i] != 0xFF {
            return None;
        }
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let h = usize::from(u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]));
            let w = usize::from(u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]));
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// True when `jpeg` starts with SOI and ends with EOI.
pub fn is_whole_jpeg(jpeg: &[u8]) -> bool {
    jpeg.len() > 4 && jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9])
}

/// A drive as an accelerometer feels it, sample `i`: 1 g with the camera
/// tilted 30° (x 0.5, z 0.866) plus road noise of up to 0.3 g on each axis
/// (deterministic, so a failing run can be replayed).
pub fn road(i: u64) -> [f64; 3] {
    let n = |k: u64| {
        let x = (i * 3 + k)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            >> 40;
        (x as f64 / (1u64 << 24) as f64 - 0.5) * 0.6
    };
    [0.5 + n(0), n(1), 0.866 + n(2)]
}
