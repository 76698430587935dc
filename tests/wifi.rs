//! The Wi-Fi settings API on the real binary with a real HTTP client: behind
//! the login and same-origin like every change, the access point's new
//! passphrase written owner-only (and refused when WPA cannot take it,
//! the file untouched), known networks added and forgotten with their
//! passphrases never answered back nor logged, the supervisor's status
//! shown; recording goes on throughout.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use base64::Engine;
use common::{Server, TempDir};

const PASSWORD: &str = "a long dashcam password";
const AP_PASS: &str = "abcd-efgh-jkmn-pqrs";

fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let a: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = a.run(req.body(body.to_string()).unwrap()).unwrap();
    let code = res.status().as_u16();
    (code, res.into_body().read_to_string().unwrap_or_default())
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("blackbox:{PASSWORD}"))
    )
}

#[test]
fn the_wifi_settings_change_behind_the_login_and_never_show_a_network_passphrase() {
    let dir = TempDir::new("wifi-api");
    let password = common::password_file(&dir, PASSWORD);
    let ap = dir.0.join("wifi-ap");
    std::fs::write(&ap, format!("ssid=blackbox-3F9A\npassphrase={AP_PASS}\n")).unwrap();
    std::fs::set_permissions(&ap, std::fs::Permissions::from_mode(0o600)).unwrap();
    let known = dir.0.join("wifi-networks");
    let status = dir.0.join("status.json");
    std::fs::write(
        &status,
        r#"{"state":"access-point","ssid":"blackbox-3F9A","clients":2,"connected":null,"signal_dbm":null,"since":1,"error":null}"#,
    )
    .unwrap();
    let config = common::config_file(
        &dir,
        &format!(
            "[wifi]\nmode = \"auto\"\nap_file = \"{}\"\nnetworks_file = \"{}\"\nstatus_file = \"{}\"\n",
            ap.display(),
            known.display(),
            status.display()
        ),
    );
    let mut server = Server::start(&[
        "--config",
        &config,
        "--password-file",
        &password,
        "--size",
        "320x240",
    ]);
    let auth = basic();
    let url = |p: &str| server.url(p);
    let json = r#"{"passphrase":"the new one, 2026"}"#;

    // Without the login: nothing shown, nothing changed.
    assert_eq!(send("GET", &url("/api/wifi"), &[], "").0, 401);
    assert_eq!(
        send(
            "POST",
            &url("/api/wifi/access-point"),
            &[("Content-Type", "application/json")],
            json
        )
        .0,
        401
    );
    // Logged in, but from another site's page: refused.
    let foreign = send(
        "POST",
        &url("/api/wifi/access-point"),
        &[
            ("Authorization", &auth),
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
        ],
        json,
    );
    assert_eq!(foreign.0, 403, "{}", foreign.1);
    assert!(std::fs::read_to_string(&ap).unwrap().contains(AP_PASS));

    let (code, body) = send("GET", &url("/api/wifi"), &[("Authorization", &auth)], "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mode"], "auto");
    assert_eq!(v["access_point"]["ssid"], "blackbox-3F9A");
    assert_eq!(v["access_point"]["passphrase"], AP_PASS);
    assert_eq!(v["status"]["clients"], 2);
    assert_eq!(v["networks"], serde_json::json!([]));

    // What WPA cannot take is refused, and the file stays as it was.
    for bad in [
        r#"{"passphrase":"short"}"#,
        r#"{"passphrase":"new\nwpa=0 line"}"#,
        r#"{"ssid":"car\nwpa=0"}"#,
        r#"{"ssid":""}"#,
        "not json",
    ] {
        let (code, body) = send(
            "POST",
            &url("/api/wifi/access-point"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            bad,
        );
        assert_eq!(code, 400, "{bad}: {body}");
    }
    assert!(std::fs::read_to_string(&ap).unwrap().contains(AP_PASS));

    let (code, body) = send(
        "POST",
        &url("/api/wifi/access-point"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        json,
    );
    assert_eq!(code, 204, "{body}");
    let text = std::fs::read_to_string(&ap).unwrap();
    assert_eq!(
        text, "ssid=blackbox-3F9A\npassphrase=the new one, 2026\n",
        "the name kept, the passphrase new"
    );
    let mode = std::fs::metadata(&ap).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Known networks: added (one replaced by name), listed by name only,
    // forgotten.
    for (ssid, pass) in [
        ("home", "home passphrase 1"),
        ("work", "work passphrase"),
        ("home", "home passphrase 2"),
    ] {
        let (code, body) = send(
            "POST",
            &url("/api/wifi/networks"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &serde_json::json!({"ssid": ssid, "passphrase": pass}).to_string(),
        );
        assert_eq!(code, 204, "{body}");
    }
    let (_, body) = send("GET", &url("/api/wifi"), &[("Authorization", &auth)], "");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["networks"],
        serde_json::json!([{"ssid": "work"}, {"ssid": "home"}])
    );
    assert!(!body.contains("home passphrase"), "{body}");
    let mode = std::fs::metadata(&known).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        "work\twork passphrase\nhome\thome passphrase 2\n"
    );
    let forget = |ssid: &str| {
        send(
            "DELETE",
            &url("/api/wifi/networks"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &serde_json::json!({ "ssid": ssid }).to_string(),
        )
        .0
    };
    assert_eq!(forget("work"), 204);
    assert_eq!(forget("work"), 404);
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        "home\thome passphrase 2\n"
    );
    let (code, _) = send(
        "POST",
        &url("/api/wifi/networks"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"ssid":"x","passphrase":"1234567"}"#,
    );
    assert_eq!(code, 400);

    // Recording went on, and no passphrase reached the log.
    let captured = || {
        let (_, body) = send("GET", &url("/api/status"), &[("Authorization", &auth)], "");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["frames"]["captured"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = captured();
    let t0 = std::time::Instant::now();
    while captured() <= before && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(captured() > before);
    let log = server.terminate();
    for secret in [AP_PASS, "the new one", "home passphrase", "work passphrase"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(log.contains("known network \"home\" added"), "{log}");
}

/// Stand-ins for the radio's programs (no radio exists here; the emulated
/// appliance's suite drives the real ones on simulated radios): hostapd
/// and wpa_supplicant say in `log` that they started, and with what,
/// then wait to be stopped; `iw` answers from files: `air` (the SSIDs in
/// range), `joined` (the network the link is up to), `stations`.
fn stand_ins(dir: &std::path::Path) {
    let d = dir.display();
    let scripts = [
        (
            "hostapd",
            format!(
                "#!/bin/sh\nif grep -q 'SAE' \"$1\" && [ -e \"{d}/no-sae\" ]; then \
                 echo 'hostapd refused SAE' >> \"{d}/log\"; exit 1; fi\n\
                 echo \"hostapd $(sed -n 's/^wpa_passphrase=//p' \"$1\")\" >> \"{d}/log\"\n\
                 echo 'wlan0: AP-ENABLED'\n\
                 trap 'echo hostapd stopped >> \"{d}/log\"; exit 0' TERM\nwhile :; do sleep 0.1; done\n"
            ),
        ),
        (
            "wpa_supplicant",
            format!(
                "#!/bin/sh\necho \"wpa_supplicant $(grep -c 'network=' \"$6\")\" >> \"{d}/log\"\n\
                 trap 'echo wpa_supplicant stopped >> \"{d}/log\"; exit 0' TERM\nwhile :; do sleep 0.1; done\n"
            ),
        ),
        (
            "iw",
            format!(
                "#!/bin/sh\ncase \"$3\" in\n\
                 scan) while read -r s; do printf 'BSS 02:00:00:00:02:00(on wlan0)\\n\\tSSID: %s\\n' \"$s\"; done < \"{d}/air\" ;;\n\
                 link) if [ -s \"{d}/joined\" ]; then printf 'Connected to 02:00:00:00:02:00 (on wlan0)\\n\\tSSID: %s\\n\\tsignal: -41 dBm\\n' \"$(cat \"{d}/joined\")\"; else echo 'Not connected.'; fi ;;\n\
                 station) cat \"{d}/stations\" ;;\nesac\n"
            ),
        ),
        ("ip", "#!/bin/sh\nexit 0\n".to_string()),
    ];
    for (name, text) in scripts {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in ["air", "joined", "stations", "log"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
}

/// A child process killed if the test fails before it ends it.
struct Reaped(Option<std::process::Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `blackbox wifi run --config CONFIG` with the stand-ins in `bin` first
/// on its PATH; its stderr kept for the test to read.
fn supervise(bin: &std::path::Path, config: &str) -> Reaped {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Reaped(Some(
        std::process::Command::new(common::BIN)
            .args(["wifi", "run", "--config", config])
            .env("PATH", path)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

/// Waits (at most 120 s: a hang, not a speed limit) until `check` holds.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !check() {
        assert!(t0.elapsed() < Duration::from_secs(120), "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_supervisor_opens_the_access_point_joins_a_known_network_and_falls_back() {
    let dir = TempDir::new("wifi-supervisor");
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    stand_ins(&bin);
    let ap = dir.0.join("wifi-ap");
    std::fs::write(&ap, format!("ssid=blackbox-3F9A\npassphrase={AP_PASS}\n")).unwrap();
    let known = dir.0.join("wifi-networks");
    let status_file = dir.0.join("run").join("status.json");
    std::fs::create_dir_all(status_file.parent().unwrap()).unwrap();
    let config = common::config_file(
        &dir,
        &format!(
            "[wifi]\nmode = \"auto\"\nap_file = \"{}\"\nnetworks_file = \"{}\"\n\
             status_file = \"{}\"\nfallback_seconds = 5\nrescan_seconds = 10\n",
            ap.display(),
            known.display(),
            status_file.display()
        ),
    );
    let mut child = supervise(&bin, &config);
    let log = || std::fs::read_to_string(bin.join("log")).unwrap_or_default();
    let status = || {
        std::fs::read(&status_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .unwrap_or_default()
    };

    // No known network: the access point, with the card's passphrase.
    until("the access point opens", || {
        log() == format!("hostapd {AP_PASS}\n") && status()["state"] == "access-point"
    });
    std::fs::write(
        bin.join("stations"),
        "Station 02:00:00:00:01:00 (on wlan0)\n",
    )
    .unwrap();
    until("its phone is counted", || status()["clients"] == 1);

    // A new passphrase from the page: hostapd again with it, no reboot.
    std::fs::write(&ap, "ssid=blackbox-3F9A\npassphrase=the new one, 2026\n").unwrap();
    until("the access point restarts with the new passphrase", || {
        log().ends_with("hostapd stopped\nhostapd the new one, 2026\n")
    });

    // A known network in range, added while a phone is on: looked for at
    // once, joined.
    std::fs::write(bin.join("air"), "neighbour\nhome net\n").unwrap();
    std::fs::write(&known, "home net\thome passphrase\n").unwrap();
    until("the known network is joined", || {
        log().ends_with("hostapd stopped\nwpa_supplicant 1\n")
    });
    std::fs::write(bin.join("joined"), "home net").unwrap();
    until("the status says so", || {
        let s = status();
        s["state"] == "client"
            && s["connected"] == true
            && s["ssid"] == "home net"
            && s["signal_dbm"] == -41
    });

    // The network goes away: the access point again, not before
    // fallback_seconds.
    std::fs::write(bin.join("joined"), "").unwrap();
    std::fs::write(bin.join("air"), "").unwrap();
    let lost = std::time::Instant::now();
    until("the access point comes back", || {
        log().ends_with("wpa_supplicant stopped\nhostapd the new one, 2026\n")
    });
    assert!(
        lost.elapsed() >= Duration::from_secs(5),
        "{:?}",
        lost.elapsed()
    );
    until("the status says so", || status()["state"] == "access-point");

    // A file the page could not have written: the error shown, logged
    // once however long it lasts, the access point kept.
    std::fs::write(&known, "no tab here\n").unwrap();
    until("the status shows the error", || {
        status()["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 1 is not"))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status()["state"], "access-point");

    // Stopped: its child with it.
    let child = child.0.take().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(log().ends_with("hostapd stopped\n"), "{}", log());
    assert_eq!(status()["state"], "off");
    let said = String::from_utf8_lossy(&out.stderr);
    for secret in [AP_PASS, "the new one", "home passphrase"] {
        assert!(!said.contains(secret), "{secret} in the log:\n{said}");
    }
    assert!(said.contains("no known network for 5 s"), "{said}");
    assert_eq!(said.matches("line 1 is not").count(), 1, "{said}");
}

#[test]
fn a_radio_that_cannot_do_wpa3_gets_wpa2_alone() {
    let dir = TempDir::new("wifi-no-sae");
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    stand_ins(&bin);
    std::fs::write(bin.join("no-sae"), "").unwrap();
    let ap = dir.0.join("wifi-ap");
    std::fs::write(&ap, format!("ssid=blackbox-3F9A\npassphrase={AP_PASS}\n")).unwrap();
    let status_file = dir.0.join("status.json");
    let config = common::config_file(
        &dir,
        &format!(
            "[wifi]\nmode = \"ap\"\nap_file = \"{}\"\nstatus_file = \"{}\"\n",
            ap.display(),
            status_file.display()
        ),
    );
    let mut child = supervise(&bin, &config);
    let log = || std::fs::read_to_string(bin.join("log")).unwrap_or_default();
    until("the access point opens with WPA2 alone", || {
        log() == format!("hostapd refused SAE\nhostapd {AP_PASS}\n")
    });
    let conf = std::fs::read_to_string(dir.0.join("hostapd.conf")).unwrap();
    assert!(conf.contains("wpa_key_mgmt=WPA-PSK\n"), "{conf}");
    let child = child.0.take().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        said.matches("WPA2 alone on this radio").count(),
        1,
        "{said}"
    );
    assert!(
        said.contains("wlan0: AP-ENABLED"),
        "hostapd's lines reach the log: {said}"
    );
}
