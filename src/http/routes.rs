//! Request routing: the guard first (host, login, origin; see
//! [`super::guard`]), then which path does what, method checks, JSON errors.

use std::net::IpAddr;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::respond::{Body, json_error, no_store, not_allowed, respond};
use super::status::Status;
use super::{guard, live, login};
use crate::net::Busy;
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("ui/index.html");

/// `GET /healthz` (liveness) and `GET /healthz?ready` (readiness): one
/// word, no login; also served by the plain-HTTP redirect listener.
pub fn healthz(state: &AppState, query: Option<&str>) -> Response<Body> {
    let (code, word) = if query == Some("ready") {
        match crate::ready::readiness(state) {
            Ok(()) => (StatusCode::OK, "ready"),
            Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.word()),
        }
    } else {
        match state.health.check() {
            Ok(()) => (StatusCode::OK, "ok"),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "stalled"),
        }
    };
    no_store(respond(
        code,
        "text/plain; charset=utf-8",
        format!("{word}\n"),
    ))
}

/// `POST /api/parking` `{"parked": true}` parks the car by hand (at once,
/// whatever the ignition line says until it next changes); `false` drives.
async fn parking(req: Request<Incoming>, state: &AppState, busy: &Busy) -> Response<Body> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        parked: bool,
    }
    match login::json_body::<Ask>(
        req,
        busy,
        "expected {\"parked\": true} or {\"parked\": false}",
    )
    .await
    {
        Ok(ask) => {
            state.parking.set_manual(ask.parked);
            no_store(super::respond::json(
                StatusCode::OK,
                &state.parking.status(),
            ))
        }
        Err(res) => res,
    }
}

/// Answers one request from `peer`.
pub async fn handle(
    req: Request<Incoming>,
    state: &AppState,
    peer: IpAddr,
    busy: &Busy,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    if let Err(res) = guard::check(req.method(), &path, req.headers(), peer, &state.auth).await {
        return res;
    }
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => return healthz(state, query.as_deref()),
        (&Method::GET | &Method::HEAD, "/login") => return login::login_page(&state.auth),
        (&Method::POST, "/login") => {
            return login::login(req, peer, &state.auth, busy, state.tls.secure()).await;
        }
        (&Method::POST, "/logout") => return login::logout(&req, &state.auth),
        (&Method::POST, "/api/password") => {
            return login::change(req, peer, &state.auth, busy).await;
        }
        (_, "/healthz" | "/login") => return not_allowed("GET, HEAD, POST", &path),
        (_, "/logout" | "/api/password") => return not_allowed("POST", &path),
        (&Method::POST, "/api/update") => return super::update::upload(req, state, busy).await,
        (&Method::GET | &Method::HEAD, "/api/update") => return super::update::status(state),
        (_, "/api/update") => return not_allowed("GET, HEAD, POST", &path),
        (&Method::POST, "/api/parking") => return parking(req, state, busy).await,
        (&Method::GET | &Method::HEAD, "/api/parking") => {
            return no_store(super::respond::json(
                StatusCode::OK,
                &state.parking.status(),
            ));
        }
        (_, "/api/parking") => return not_allowed("GET, HEAD, POST", &path),
        _ => {}
    }
    let req = if path.starts_with("/api/wifi") {
        match super::wifi::handle(req, state, busy).await {
            Ok(res) => return res,
            Err(req) => req,
        }
    } else {
        req
    };
    if let Some(res) =
        super::recordings::handle(req.method(), &path, query.as_deref(), req.headers(), state).await
    {
        return res;
    }
    let readable = matches!(*req.method(), Method::GET | Method::HEAD);
    // A camera's own live view: /cameras/{id}/video_feed, …/snapshot.jpg.
    if let Some(rest) = path.strip_prefix("/cameras/") {
        let Some((id, what)) = rest.split_once('/') else {
            return json_error(StatusCode::NOT_FOUND, "not found", &path);
        };
        if !matches!(what, "video_feed" | "snapshot.jpg") {
            return json_error(StatusCode::NOT_FOUND, "not found", &path);
        }
        let Some(camera) = state.cameras.get(id) else {
            return json_error(StatusCode::NOT_FOUND, "no such camera", &path);
        };
        if !readable {
            return not_allowed("GET, HEAD", &path);
        }
        return match what {
            "video_feed" => live::stream(camera),
            _ => live::snapshot(camera, &path).await,
        };
    }
    let known = matches!(
        path.as_str(),
        "/" | "/index.html"
            | "/video_feed"
            | "/stream"
            | "/snapshot.jpg"
            | "/api/status"
            | "/metrics"
    );
    if !known {
        return json_error(StatusCode::NOT_FOUND, "not found", &path);
    }
    if !readable {
        return not_allowed("GET, HEAD", &path);
    }
    match path.as_str() {
        "/" | "/index.html" => no_store(respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            INDEX_HTML,
        )),
        // The first camera's, where every client written for one camera
        // looks.
        "/video_feed" | "/stream" => live::stream(state.cameras.first()),
        "/snapshot.jpg" => live::snapshot(state.cameras.first(), &path).await,
        "/api/status" => {
            let body = serde_json::to_vec(&Status::gather(state)).unwrap_or_default();
            no_store(respond(StatusCode::OK, "application/json", body))
        }
        _ => no_store(respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            super::metrics::exposition(&Status::gather(state)),
        )),
    }
}
