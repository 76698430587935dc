//! The Wi-Fi settings in the page and the API, behind the login (changes
//! from the page's own origin only: the guard checks both first):
//!
//! - `GET /api/wifi`: the mode, what the radio is doing (the supervisor's
//!   status file: access point and its phones, or the network joined and
//!   its signal), the access point's name and passphrase (the owner needs
//!   them for the next phone), the known networks' names (never their
//!   passphrases);
//! - `POST /api/wifi/access-point` `{"ssid"?, "passphrase"}`: a new name or
//!   passphrase; the supervisor restarts the access point with it within a
//!   second, no reboot, recording untouched;
//! - `POST /api/wifi/networks` `{"ssid", "passphrase"}`: add (or replace) a
//!   known network; `DELETE /api/wifi/networks` `{"ssid"}`: forget one.
//!
//! This process only writes the files (as the service user, owner-only);
//! the radio is the supervisor's (src/wifi/supervisor.rs). Passphrases
//! never reach the log.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::login::json_body;
use super::respond::{Body, json, json_error, no_store, not_allowed, respond};
use crate::config::WifiMode;
use crate::net::Busy;
use crate::state::AppState;
use crate::wifi::networks::{self, Network};
use crate::wifi::{self as wifi_files, AccessPoint};

#[derive(Deserialize)]
struct ApChange {
    ssid: Option<String>,
    passphrase: Option<String>,
}

#[derive(Deserialize)]
struct NetworkChange {
    ssid: String,
    passphrase: Option<String>,
}

/// Answers the Wi-Fi routes; `None` for any other path.
pub async fn handle(
    req: Request<Incoming>,
    state: &AppState,
    busy: &Busy,
) -> Result<Response<Body>, Request<Incoming>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/api/wifi") => Ok(show(state).await),
        (_, "/api/wifi") => Ok(not_allowed("GET, HEAD", &path)),
        (Method::POST, "/api/wifi/access-point") => Ok(change_ap(req, state, busy).await),
        (_, "/api/wifi/access-point") => Ok(not_allowed("POST", &path)),
        (Method::POST, "/api/wifi/networks") => Ok(change_networks(req, state, busy, true).await),
        (Method::DELETE, "/api/wifi/networks") => {
            Ok(change_networks(req, state, busy, false).await)
        }
        (_, "/api/wifi/networks") => Ok(not_allowed("POST, DELETE", &path)),
        _ => Err(req),
    }
}

fn mode_word(m: WifiMode) -> &'static str {
    match m {
        WifiMode::Off => "off",
        WifiMode::Ap => "ap",
        WifiMode::Client => "client",
        WifiMode::Auto => "auto",
    }
}

async fn show(state: &AppState) -> Response<Body> {
    let cfg = state.config.wifi.clone();
    let view = smol::unblock(move || {
        let ap = cfg.ap_file.as_deref().map(wifi_files::load);
        let known = cfg.networks_file.as_deref().map(networks::load);
        serde_json::json!({
            "mode": mode_word(cfg.mode),
            "status": crate::wifi::status::read(&cfg.status_file),
            "access_point": match ap {
                Some(Ok(ap)) => serde_json::json!({"ssid": ap.ssid, "passphrase": ap.passphrase}),
                Some(Err(e)) => serde_json::json!({"error": e.to_string()}),
                None => serde_json::Value::Null,
            },
            "networks": match known {
                Some(Ok(list)) => serde_json::json!(list.iter().map(|n| serde_json::json!({"ssid": n.ssid})).collect::<Vec<_>>()),
                Some(Err(e)) => serde_json::json!({"error": e.to_string()}),
                None => serde_json::Value::Null,
            },
        })
    })
    .await;
    no_store(json(StatusCode::OK, &view))
}

fn done() -> Response<Body> {
    no_store(respond(StatusCode::NO_CONTENT, "text/plain", ""))
}

async fn change_ap(req: Request<Incoming>, state: &AppState, busy: &Busy) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(file) = state.config.wifi.ap_file.clone() else {
        return json_error(
            StatusCode::CONFLICT,
            "no wifi.ap_file: no access point",
            &path,
        );
    };
    let c: ApChange = match json_body(
        req,
        busy,
        "expected {\"ssid\": ..., \"passphrase\": ...} (either may be left out)",
    )
    .await
    {
        Ok(c) => c,
        Err(res) => return res,
    };
    let saved = smol::unblock(move || {
        let old = wifi_files::load(&file)?;
        let new = AccessPoint {
            ssid: c.ssid.unwrap_or(old.ssid),
            passphrase: c.passphrase.unwrap_or(old.passphrase),
        };
        wifi_files::save(&file, &new).map(|()| new.ssid)
    })
    .await;
    match saved {
        Ok(ssid) => {
            log::info!("wifi: the access point's settings were changed in the page ({ssid})");
            done()
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string(), &path),
    }
}

async fn change_networks(
    req: Request<Incoming>,
    state: &AppState,
    busy: &Busy,
    add: bool,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(file) = state.config.wifi.networks_file.clone() else {
        return json_error(
            StatusCode::CONFLICT,
            "no wifi.networks_file: no known networks",
            &path,
        );
    };
    let c: NetworkChange =
        match json_body(req, busy, "expected {\"ssid\": ..., \"passphrase\": ...}").await {
            Ok(c) => c,
            Err(res) => return res,
        };
    let ssid = c.ssid.clone();
    let result = smol::unblock(move || -> Result<bool, crate::wifi::WifiError> {
        let list = networks::load(&file)?;
        let next = if add {
            let passphrase = c.passphrase.unwrap_or_default();
            networks::with(
                &list,
                Network {
                    ssid: c.ssid,
                    passphrase,
                },
            )
        } else {
            let next: Vec<Network> = list.iter().filter(|n| n.ssid != c.ssid).cloned().collect();
            if next.len() == list.len() {
                return Ok(false);
            }
            next
        };
        networks::save(&file, &next).map(|()| true)
    })
    .await;
    match result {
        Ok(true) => {
            log::info!(
                "wifi: known network {ssid:?} {} in the page",
                if add { "added" } else { "forgotten" }
            );
            done()
        }
        Ok(false) => json_error(
            StatusCode::NOT_FOUND,
            "no known network of that name",
            &path,
        ),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string(), &path),
    }
}
