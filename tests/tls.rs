//! HTTPS on the real binary, checked by clients that verify the
//! certificate: curl with `--cacert`, and Python's `ssl` with the
//! certificate as its only trust anchor. The certificate is the device's
//! own, made by `blackbox firstboot --tls-dir` (whose fingerprint the
//! owner reads beside the first-boot password). The plain-HTTP listener
//! answers `/healthz` and sends everything else to HTTPS; the session
//! cookie is `Secure`; a clear-text client on the HTTPS port gets nothing
//! and the server carries on; a broken certificate closes the web side
//! but never the recorder.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, TempDir};

const PASSWORD: &str = "a long dashcam password";

/// `curl --cacert CERT` (verifying), with extra arguments: (exit code,
/// stdout with the response head, stderr).
fn curl(cert: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "60", "--cacert"])
        .arg(cert)
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn tls_server(dir: &TempDir, extra: &str) -> (Server, std::path::PathBuf, String) {
    let tls = dir.0.join("tls");
    let pw = common::password_file(dir, PASSWORD);
    let out = Command::new(common::BIN)
        .args(["firstboot", "--password-file"])
        .arg(dir.0.join("first-password"))
        .arg("--tls-dir")
        .arg(&tls)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fingerprint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("blackbox: the HTTPS certificate's SHA-256 fingerprint is "))
        .unwrap_or_else(|| panic!("no fingerprint in {stdout}"))
        .to_string();
    let config = common::config_file(
        dir,
        &format!(
            "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{extra}",
            tls.join("cert.pem").display(),
            tls.join("key.pem").display()
        ),
    );
    let server = Server::start(&[
        "--config",
        &config,
        "--password-file",
        &pw,
        "--size",
        "320x240",
        "--fps",
        "10",
    ]);
    (server, tls.join("cert.pem"), fingerprint)
}

#[test]
fn https_with_a_certificate_clients_verify() {
    let dir = TempDir::new("tls");
    let (server, cert, fingerprint) = tls_server(&dir, "redirect_listen = \"127.0.0.1:0\"\n");
    let port = server.port;
    let https = |path: &str| format!("https://localhost:{port}{path}");

    // curl, verifying against the device's certificate.
    let (code, out, err) = curl(&cert, &[&https("/healthz")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("ok\n"),
        "{out}"
    );
    let (_, out, _) = curl(&cert, &[&https("/api/status")]);
    assert!(
        out.starts_with("HTTP/1.1 401"),
        "a password is needed: {out}"
    );
    let (code, out, err) = curl(
        &cert,
        &["-u", &format!("blackbox:{PASSWORD}"), &https("/api/status")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"recorder\""), "{out}");
    // The login's cookie is Secure.
    let (_, out, _) = curl(
        &cert,
        &[
            "-H",
            &format!("Origin: https://localhost:{port}"),
            "--data-urlencode",
            &format!("password={PASSWORD}"),
            &https("/login"),
        ],
    );
    let cookie = out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // A certificate that is not the device's is refused by a verifying client.
    let other = dir.0.join("other");
    std::fs::create_dir_all(&other).unwrap();
    Command::new(common::BIN)
        .args(["firstboot", "--password-file"])
        .arg(other.join("pw"))
        .arg("--tls-dir")
        .arg(&other)
        .output()
        .unwrap();
    let (code, _, err) = curl(&other.join("cert.pem"), &[&https("/healthz")]);
    assert_ne!(code, 0, "another certificate must not verify: {err}");

    // Python's ssl, with the certificate as its only anchor; the peer's
    // certificate has the fingerprint firstboot printed.
    let script = format!(
        "import ssl, socket, hashlib\n\
         ctx = ssl.create_default_context(cafile={cert:?})\n\
         with socket.create_connection(('127.0.0.1', {port})) as s:\n\
         \x20   with ctx.wrap_socket(s, server_hostname='localhost') as t:\n\
         \x20       der = t.getpeercert(binary_form=True)\n\
         \x20       t.sendall(b'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n')\n\
         \x20       reply = b''\n\
         \x20       while True:\n\
         \x20           b = t.recv(4096)\n\
         \x20           if not b: break\n\
         \x20           reply += b\n\
         print(':'.join('%02X' % b for b in hashlib.sha256(der).digest()))\n\
         print(reply.split(b'\\r\\n')[0].decode())\n",
        cert = cert.display().to_string(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(fingerprint.as_str()),
        "the fingerprint shown is the one served"
    );
    assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));

    // Clear text on the HTTPS port: nothing served, and the server goes on.
    let (_, out, _) = curl(&cert, &[&format!("http://127.0.0.1:{port}/api/status")]);
    assert!(!out.contains("\"recorder\""), "{out}");
    let (code, out, _) = curl(&cert, &[&https("/healthz")]);
    assert!(code == 0 && out.ends_with("ok\n"), "{out}");

    // The plain-HTTP listener: /healthz answers, everything else goes to HTTPS.
    let plain = server.redirect_port.expect("the redirect listener");
    let (_, out, _) = curl(&cert, &[&format!("http://127.0.0.1:{plain}/healthz")]);
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("ok\n"),
        "{out}"
    );
    let (_, out, _) = curl(&cert, &[&format!("http://127.0.0.1:{plain}/healthz?ready")]);
    assert!(out.starts_with("HTTP/1.1"), "{out}");
    let (_, out, _) = curl(
        &cert,
        &[&format!("http://localhost:{plain}/api/status?x=1")],
    );
    assert!(out.starts_with("HTTP/1.1 308"), "{out}");
    let location = format!("location: https://localhost:{port}/api/status?x=1");
    assert!(out.to_ascii_lowercase().contains(&location), "{out}");
    assert!(
        !out.contains("\"recorder\""),
        "nothing served in clear text"
    );
    // Followed, with verification: the page over HTTPS.
    let (code, out, err) = curl(
        &cert,
        &[
            "--location-trusted",
            "-u",
            &format!("blackbox:{PASSWORD}"),
            &format!("http://localhost:{plain}/api/status"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"recorder\""), "{out}");
    // A foreign host name is refused there too.
    let (_, out, _) = curl(
        &cert,
        &[
            "-H",
            "Host: evil.example",
            &format!("http://127.0.0.1:{plain}/"),
        ],
    );
    assert!(out.starts_with("HTTP/1.1 421"), "{out}");
}

#[test]
fn a_broken_certificate_closes_the_web_side_never_the_recorder() {
    let dir = TempDir::new("tls-broken");
    let tls = dir.0.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(tls.join("key.pem"), "not a key\n").unwrap();
    let data = dir.0.join("data");
    let config = common::config_file(
        &dir,
        &format!(
            "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            tls.join("cert.pem").display(),
            tls.join("key.pem").display()
        ),
    );
    let mut server = Server::start(&[
        "--config",
        &config,
        "--data",
        data.to_str().unwrap(),
        "--size",
        "320x240",
        "--fps",
        "10",
    ]);
    let (code, _, _) = curl(
        &tls.join("cert.pem"),
        &[&format!("https://localhost:{}/healthz", server.port)],
    );
    assert_ne!(code, 0, "no HTTPS without a usable certificate");
    common::wait_recorded(&data.join("recordings"), 20_000);
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    let log = server.terminate();
    assert_eq!(log.matches("HTTPS cannot start").count(), 1, "{log}");
}
