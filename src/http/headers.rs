//! The security headers on every response. The page may not be framed by
//! another site (`X-Frame-Options: DENY`, and CSP `frame-ancestors 'none'`:
//! clickjacking the record or delete buttons); nothing is sniffed into a
//! type it was not sent as (`nosniff`: a recording or a JSON error is never
//! run as a script); the address of the page is not sent to other sites
//! (`Referrer-Policy: same-origin`). The Content-Security-Policy lets the
//! pages run only their own inline script and style, named by their
//! SHA-256 (computed once from the embedded pages, so it cannot drift from
//! them), and load images and data from this device alone: an injected
//! `<script>` or a stray third-party resource does nothing.

use std::sync::OnceLock;

use base64::Engine;
use hyper::Response;
use hyper::header::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

/// The pages whose inline blocks the policy allows.
const PAGES: [&str; 2] = [include_str!("ui/index.html"), include_str!("ui/login.html")];

/// `'sha256-…'` for every `<TAG>…</TAG>` block in the pages.
fn hashes(tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    for page in PAGES {
        let mut rest = page;
        while let Some(start) = rest.find(&open) {
            let body = &rest[start + open.len()..];
            let Some(end) = body.find(&close) else { break };
            let digest = Sha256::digest(&body.as_bytes()[..end]);
            out.push(format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ));
            rest = &body[end..];
        }
    }
    out.join(" ")
}

/// The Content-Security-Policy every response carries.
pub fn policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        format!(
            "default-src 'none'; script-src {}; style-src {}; img-src 'self' data: blob:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            hashes("script"),
            hashes("style")
        )
    })
}

/// Adds the security headers to `res`.
pub fn secure<B>(res: &mut Response<B>) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(policy()) {
        h.insert(hyper::header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        hyper::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    h.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_each_inline_block_and_no_unsafe_source() {
        let p = policy();
        assert_eq!(hashes("script").matches("'sha256-").count(), 1, "{p}");
        assert_eq!(hashes("style").matches("'sha256-").count(), 2, "{p}");
        assert!(!p.contains("unsafe"), "{p}");
        assert!(p.contains("frame-ancestors 'none'"));
    }
}
