//! The plain-HTTP listener beside HTTPS (`http.redirect_listen`, port 80
//! on the appliance): `/healthz` is answered here as on HTTPS (supervisors
//! and the update gate speak plain HTTP on loopback), and every other
//! request is sent to the same path on the HTTPS address with 308, which
//! keeps the method. Nothing else is served in clear text: no page, no
//! login, no cookie. The `Host` must still name this device (421
//! otherwise), so a rebinding page cannot use this listener either.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue, LOCATION};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use smol::Async;
use smol_hyper::rt::FuturesIo;

use super::respond::{Body, json_error, respond};
use super::{headers, io, routes};
use crate::state::AppState;

/// Where `Host` (`name`, `name:port`, `[v6]:port`) goes on HTTPS at `port`.
fn https_location(host: &str, port: u16, path_and_query: &str) -> String {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']')
            .next()
            .map(|h| format!("[{h}]"))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or("").to_string()
    };
    if port == 443 {
        format!("https://{name}{path_and_query}")
    } else {
        format!("https://{name}:{port}{path_and_query}")
    }
}

fn handle(req: &Request<Incoming>, state: &AppState) -> Response<Body> {
    let path = req.uri().path();
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok());
    let Some(host) = host.filter(|h| state.auth.hosts.allows(h)) else {
        return json_error(
            StatusCode::MISDIRECTED_REQUEST,
            "this device does not answer to that host name (http.allowed_hosts)",
            path,
        );
    };
    if path == "/healthz" && matches!(*req.method(), Method::GET | Method::HEAD) {
        return routes::healthz(state, req.uri().query());
    }
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = https_location(host, state.https_port, target);
    let mut res = respond(
        StatusCode::PERMANENT_REDIRECT,
        "text/plain; charset=utf-8",
        format!("this dashcam speaks HTTPS: {location}\n"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(LOCATION, v);
    }
    res
}

/// One plain-HTTP connection, admitted by the same connection table.
pub async fn connection(stream: Async<std::net::TcpStream>, state: Arc<AppState>) {
    let peer = stream
        .get_ref()
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let Ok(slot) = state.http.admit(peer) else {
        return;
    };
    let io = io::WriteTimeout::new(FuturesIo::new(stream), state.config.http.write_timeout);
    let svc_state = state.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let mut res = handle(&req, &svc_state);
        headers::secure(&mut res);
        async move { Ok::<_, Infallible>(res) }
    });
    let mut conn = pin!(super::builder().serve_connection(io, svc));
    let _ = super::until_closed(conn.as_mut(), &state, &slot).await;
}

#[cfg(test)]
mod tests {
    use super::https_location;

    #[test]
    fn locations_keep_the_name_and_change_the_port() {
        assert_eq!(
            https_location("dashcam.local:80", 443, "/a?b=1"),
            "https://dashcam.local/a?b=1"
        );
        assert_eq!(
            https_location("192.168.4.1", 8443, "/"),
            "https://192.168.4.1:8443/"
        );
        assert_eq!(
            https_location("[fe80::1]:8080", 8443, "/x"),
            "https://[fe80::1]:8443/x"
        );
    }
}
