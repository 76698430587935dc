//! The checks every request passes before its route runs: the `Host` must
//! name this device (else 421: a DNS-rebinding page arrives with its own
//! name); with a password set, every route but the public ones needs a
//! session cookie or HTTP Basic (else 401, or a redirect to the login page
//! for a page load); and a request that changes something must come from the
//! page's own origin (else 403, and nothing changes). See [`crate::auth`].

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use hyper::header::{
    AUTHORIZATION, COOKIE, HOST, HeaderValue, LOCATION, ORIGIN, REFERER, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::{HeaderMap, Method, Response, StatusCode};

use super::respond::{Body, empty, json_error, no_store, respond};
use crate::auth::origin::{self, Source};
use crate::auth::{Auth, TooManyChecks};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "blackbox_session";
/// The page's own requests carry this header, so that a 401 does not make
/// the browser show its password dialog.
pub const PAGE_HEADER: &str = "x-requested-with";

/// How a request proved who sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// No password is set.
    Open,
    /// A public route (login page, `/healthz`).
    Public,
    Session,
    Basic,
}

/// Routes anyone may use.
fn public(method: &Method, path: &str) -> bool {
    matches!(
        (method, path),
        (&Method::GET | &Method::HEAD, "/healthz" | "/login")
            | (&Method::POST, "/login" | "/logout")
    )
}

/// The session id in the `Cookie` header, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE_NAME).then(|| v.trim().to_string())
        })
}

/// The password in an `Authorization: Basic` header (the user name is not
/// checked: there is one password).
fn basic_password(headers: &HeaderMap) -> Option<Vec<u8>> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

fn header(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// 401: a page load goes to the login page; the page's own requests get
/// JSON; anybody else is asked for HTTP Basic.
fn unauthorized(method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
    let page_load = matches!(*method, Method::GET | Method::HEAD)
        && (path == "/"
            || path == "/index.html"
            || header(headers, hyper::header::ACCEPT).is_some_and(|a| a.contains("text/html")));
    if page_load {
        let mut res = Response::new(empty());
        *res.status_mut() = StatusCode::SEE_OTHER;
        res.headers_mut()
            .insert(LOCATION, HeaderValue::from_static("/login"));
        return res;
    }
    let mut res = json_error(StatusCode::UNAUTHORIZED, "authentication required", path);
    let from_page = headers.contains_key(PAGE_HEADER) || headers.contains_key(COOKIE);
    if !from_page {
        res.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"blackbox\", charset=\"UTF-8\""),
        );
    }
    res
}

/// 429, while an address (or everyone together) has used up its attempts,
/// or while too many password checks are waiting.
pub fn too_many(wait: std::time::Duration, path: &str) -> Response<Body> {
    let secs = wait.as_secs().max(1);
    let mut res = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many login attempts; try again in {secs} s"),
        path,
    );
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// 503 and a page that says why, while the web side is closed (listening
/// beyond loopback with no valid password). Recording goes on.
fn closed(why: &str) -> Response<Body> {
    let escaped = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>blackbox: no password</title><h1>blackbox is recording, but its web side is closed</h1>\
         <p>It listens beyond this machine and has no valid password, so it lets nobody in.</p>\
         <p>Why: {escaped}</p>\
         <p>Set one on the device with <code>blackbox passwd FILE</code> (the file that \
         <code>http.password_file</code> names); this page opens within seconds, without a restart.</p>\n"
    );
    let mut res = no_store(respond(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/html; charset=utf-8",
        html,
    ));
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// Runs the checks; `Ok` with how the request was let in, or the reply.
pub async fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    peer: IpAddr,
    auth: &Arc<Auth>,
) -> Result<Via, Response<Body>> {
    let host = header(headers, HOST);
    if !host.is_some_and(|h| auth.hosts.allows(h)) {
        return Err(json_error(
            StatusCode::MISDIRECTED_REQUEST,
            "this device does not answer to that host name (http.allowed_hosts)",
            path,
        ));
    }
    if path != "/healthz"
        && let Some(why) = auth.closed()
    {
        return Err(closed(&why));
    }
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let source = origin::source(host, header(headers, ORIGIN), header(headers, REFERER));
    if changes && source == Source::Foreign {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "a request from another site: refused",
            path,
        ));
    }
    let via = if public(method, path) {
        Via::Public
    } else if !auth.required() {
        Via::Open
    } else if session_cookie(headers).is_some_and(|id| auth.sessions.valid(&id)) {
        Via::Session
    } else if let Some(pw) = basic_password(headers) {
        // Counted before the hash runs; a right password takes it back.
        if let Err(refused) = auth.limiter.begin(peer) {
            return Err(too_many(refused.wait(), path));
        }
        match auth.slow(move |a| a.check(&pw)).await {
            Err(TooManyChecks) => {
                auth.limiter.cancel(peer);
                return Err(too_many(std::time::Duration::from_secs(1), path));
            }
            Ok(true) => {
                auth.limiter.succeeded(peer);
                Via::Basic
            }
            Ok(false) => {
                let n = auth.limiter.failures(peer);
                log::warn!("failed HTTP Basic login from {peer} ({n} in the last minute)");
                return Err(unauthorized(method, path, headers));
            }
        }
    } else {
        return Err(unauthorized(method, path, headers));
    };
    // A change with neither Origin nor Referer is a tool (curl, a script),
    // never a browser's cross-site request; but a browser's session cookie
    // must come with proof of the page.
    if changes && source == Source::Unknown && matches!(via, Via::Session) {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "a change without Origin or Referer: refused",
            path,
        ));
    }
    if changes && source == Source::Unknown && headers.contains_key(COOKIE) && via != Via::Basic {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "a change without Origin or Referer: refused",
            path,
        ));
    }
    Ok(via)
}
