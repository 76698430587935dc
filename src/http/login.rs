//! Logging in and out, and changing the password: the login page
//! (`GET /login`), its form (`POST /login`: a session cookie on success, 401
//! and the page again on a wrong password, 429 while the address must
//! wait), `POST /logout`, and `POST /api/password` (the current password and
//! a new one, as JSON; every session ends).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION, RETRY_AFTER, SET_COOKIE};
use hyper::{Request, Response, StatusCode};

use super::body::{BodyError, BodyReader};
use super::guard::{COOKIE_NAME, session_cookie};
use super::respond::{Body, empty, json_error, no_store, respond};
use crate::auth::{Auth, ChangeError, TooManyChecks};
use crate::net::Busy;

const LOGIN_HTML: &str = include_str!("ui/login.html");
/// Request bodies here are a password or two: anything larger is refused.
const MAX_BODY: usize = 4096;

fn page(status: StatusCode, message: &str) -> Response<Body> {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    no_store(respond(
        status,
        "text/html; charset=utf-8",
        LOGIN_HTML.replace("<!--MESSAGE-->", &escaped),
    ))
}

/// `GET /login`.
pub fn login_page(auth: &Auth) -> Response<Body> {
    if !auth.required() {
        return see_other("/");
    }
    page(StatusCode::OK, "")
}

fn see_other(to: &'static str) -> Response<Body> {
    let mut res = Response::new(empty());
    *res.status_mut() = StatusCode::SEE_OTHER;
    res.headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    res
}

/// The body, or the reply that says why it could not be had.
async fn body(req: Request<Incoming>, busy: &Busy) -> Result<Bytes, BodyError> {
    BodyReader::new(req.into_body(), busy)
        .collect(MAX_BODY)
        .await
}

/// A JSON body of type `T`, or the reply that says why there is none
/// (`usage`: what the route expects).
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    busy: &Busy,
    usage: &str,
) -> Result<T, Response<Body>> {
    let path = req.uri().path().to_string();
    let sent = match body(req, busy).await {
        Ok(b) => b,
        Err(e) => return Err(json_error(body_status(&e), &e.to_string(), &path)),
    };
    serde_json::from_slice::<T>(&sent)
        .map_err(|_| json_error(StatusCode::BAD_REQUEST, usage, &path))
}

/// The status for a body that could not be read.
fn body_status(e: &BodyError) -> StatusCode {
    match e {
        BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
        BodyError::Broken(_) => StatusCode::BAD_REQUEST,
    }
}

/// Decodes one field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let value = text.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })?;
    let mut out = Vec::with_capacity(value.len());
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// 429 and the login page, saying how long to wait.
fn wait_page(wait: Duration) -> Response<Body> {
    let secs = wait.as_secs().max(1);
    let mut res = page(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("Too many login attempts: try again in {secs} s."),
    );
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// `POST /login`.
pub async fn login(
    req: Request<Incoming>,
    peer: IpAddr,
    auth: &Arc<Auth>,
    busy: &Busy,
    secure: bool,
) -> Response<Body> {
    if !auth.required() {
        return see_other("/");
    }
    if let Err(refused) = auth.limiter.check(peer) {
        return wait_page(refused.wait());
    }
    let sent = match body(req, busy).await {
        Ok(b) => b,
        Err(e) => return page(body_status(&e), &format!("{e}.")),
    };
    let Some(password) = form_field(&sent, "password") else {
        return page(StatusCode::BAD_REQUEST, "No password was sent.");
    };
    // Counted before the hash runs; a right password takes it back.
    if let Err(refused) = auth.limiter.begin(peer) {
        return wait_page(refused.wait());
    }
    match auth.slow(move |a| a.check(&password)).await {
        Err(TooManyChecks) => {
            auth.limiter.cancel(peer);
            return wait_page(Duration::from_secs(1));
        }
        Ok(false) => {
            let n = auth.limiter.failures(peer);
            log::warn!("failed login from {peer} ({n} in the last minute)");
            return page(StatusCode::UNAUTHORIZED, "Wrong password.");
        }
        Ok(true) => {}
    }
    auth.limiter.succeeded(peer);
    let id = match auth.sessions.create() {
        Ok(id) => id,
        Err(e) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Cannot start a session: {e}"),
            );
        }
    };
    log::info!("login from {peer}");
    let mut res = see_other("/");
    // Over HTTPS the cookie never travels in clear text.
    let cookie = format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        auth.sessions.lifetime().as_secs(),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(SET_COOKIE, v);
    }
    res
}

/// `POST /logout`.
pub fn logout(req: &Request<Incoming>, auth: &Auth) -> Response<Body> {
    if let Some(id) = session_cookie(req.headers()) {
        auth.sessions.remove(&id);
    }
    let mut res = see_other("/login");
    res.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("blackbox_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

#[derive(serde::Deserialize)]
struct Change {
    current: String,
    new: String,
}

/// `POST /api/password`.
pub async fn change(
    req: Request<Incoming>,
    peer: IpAddr,
    auth: &Arc<Auth>,
    busy: &Busy,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if let Err(refused) = auth.limiter.check(peer) {
        return super::guard::too_many(refused.wait(), &path);
    }
    let c: Change = match json_body(req, busy, "expected {\"current\": ..., \"new\": ...}").await {
        Ok(c) => c,
        Err(res) => return res,
    };
    if let Err(refused) = auth.limiter.begin(peer) {
        return super::guard::too_many(refused.wait(), &path);
    }
    let changed = match auth
        .slow(move |a| a.change(c.current.as_bytes(), &c.new))
        .await
    {
        Ok(r) => r,
        Err(TooManyChecks) => {
            auth.limiter.cancel(peer);
            return super::guard::too_many(Duration::from_secs(1), &path);
        }
    };
    match changed {
        // The current password was right: the attempt is taken back.
        Ok(()) | Err(ChangeError::Password(_)) => auth.limiter.succeeded(peer),
        // Nothing was checked.
        Err(ChangeError::NoFile) => auth.limiter.cancel(peer),
        Err(ChangeError::Wrong) => {}
    }
    match changed {
        Ok(()) => {
            let mut res = Response::new(empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        Err(ChangeError::Wrong) => {
            let n = auth.limiter.failures(peer);
            log::warn!(
                "a password change from {peer} gave a wrong password ({n} in the last minute)"
            );
            json_error(
                StatusCode::FORBIDDEN,
                "the current password is wrong",
                &path,
            )
        }
        Err(e @ ChangeError::Password(crate::auth::password::PasswordError::Weak(_))) => {
            json_error(StatusCode::BAD_REQUEST, &e.to_string(), &path)
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), &path),
    }
}

#[cfg(test)]
mod tests {
    use super::form_field;

    #[test]
    fn form_fields() {
        assert_eq!(
            form_field(b"password=a%20b+c%26d&x=1", "password").unwrap(),
            b"a b c&d"
        );
        assert_eq!(form_field(b"x=1", "password"), None);
        assert_eq!(form_field(b"password=%zz", "password"), None);
        assert_eq!(form_field(b"password=%4", "password"), None);
        assert_eq!(form_field(&[0xFF, 0xFE], "password"), None);
    }
}
