//! `blackbox wifi run`: the radio's supervisor, a process of its own
//! (`blackbox-wifi.service`: the service user with CAP_NET_ADMIN and
//! CAP_NET_RAW, never root), apart from the recorder, so that nothing the
//! radio does can stop or slow recording. It runs hostapd
//! (the access point) or wpa_supplicant (a known network) as its child,
//! one at a time, and decides between them by `wifi.mode`:
//!
//! - `ap`: the access point, always; `client`: known networks, always;
//! - `auto`: a known network when one is in range (looked for at start,
//!   when the list changes, and every `wifi.rescan_seconds` while no phone
//!   is on the access point: a parked car at home), else the access point;
//!   a known network out of reach for `wifi.fallback_seconds` opens the
//!   access point again, so the owner can always reach the dashcam.
//!
//! The access point offers WPA3-SAE beside WPA2 where the radio can: a
//! radio whose hostapd ends before it says AP-ENABLED with SAE on (a
//! full-MAC radio without SAE in AP mode) gets WPA2 alone from then on,
//! said once in the log.
//!
//! It re-reads the access point's file and the known networks every
//! second (the page writes them as the service user): a new passphrase
//! restarts hostapd at once, no reboot. What it is doing goes to
//! `wifi.status_file` for the page. It reads those files without
//! following links (`super::read_own`), should it ever run as another
//! user than the one that writes them. A file it cannot read is logged
//! once (and again when the reason changes), and the radio keeps what it
//! had.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{info, warn};

use super::networks::{self, Network};
use super::status::{self, WifiStatus};
use super::{AccessPoint, WifiError};
use crate::config::{WifiConfig, WifiMode};

/// What the radio is for, now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    AccessPoint,
    Client,
}

/// The supervisor's state.
struct Supervisor {
    cfg: WifiConfig,
    dir: PathBuf,
    role: Role,
    child: Option<Child>,
    ap: Option<AccessPoint>,
    networks: Vec<Network>,
    /// When the joined network was last seen connected (or the join began).
    lost_since: Option<Instant>,
    last_scan: Option<Instant>,
    /// The list changed since the last scan.
    rescan_now: bool,
    since: u64,
    status: WifiStatus,
    /// The last error of each file (logged once until it changes).
    file_errors: [Option<String>; 2],
    /// Why the role's program could not be started, if it could not.
    start_error: Option<String>,
    /// Offer WPA3-SAE beside WPA2 (until hostapd fails to start with it).
    sae: bool,
    /// hostapd said AP-ENABLED since it was last started.
    ap_enabled: Arc<AtomicBool>,
    /// The thread that reads hostapd's lines (ends with them).
    ap_reader: Option<std::thread::JoinHandle<()>>,
    /// Times the child ended on its own (logged once, then counted).
    child_failures: u64,
    restart_at: Option<Instant>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs until SIGTERM or SIGINT; the exit code.
pub fn run(cfg: &WifiConfig) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("blackbox: wifi: no signal handler: {e}");
            return 1;
        }
    }
    let dir = cfg
        .status_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/run/blackbox-wifi"));
    let mut s = Supervisor {
        cfg: cfg.clone(),
        dir,
        role: Role::AccessPoint,
        child: None,
        ap: None,
        networks: Vec::new(),
        lost_since: None,
        last_scan: None,
        rescan_now: false,
        since: now_unix(),
        status: WifiStatus::default(),
        file_errors: [None, None],
        start_error: None,
        sae: true,
        ap_enabled: Arc::new(AtomicBool::new(false)),
        ap_reader: None,
        child_failures: 0,
        restart_at: None,
    };
    if cfg.mode == WifiMode::Off {
        s.publish(WifiStatus {
            state: "off".into(),
            ..Default::default()
        });
        info!("wifi: wifi.mode is off: the radio is left alone");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
        }
        return 0;
    }
    s.reload();
    let first = match cfg.mode {
        WifiMode::Client => Role::Client,
        WifiMode::Auto if !s.networks.is_empty() => {
            let _ = run_quiet("ip", &["link", "set", &cfg.interface, "up"]);
            if s.known_in_range(false) {
                Role::Client
            } else {
                Role::AccessPoint
            }
        }
        _ => Role::AccessPoint,
    };
    s.become_(first, "at start");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        if stop.load(Ordering::Relaxed) {
            break;
        }
        s.tick();
    }
    s.stop_child();
    s.publish(WifiStatus {
        state: "off".into(),
        ..Default::default()
    });
    0
}

impl Supervisor {
    /// Re-reads both files; true if what the current role uses changed.
    fn reload(&mut self) -> bool {
        let mut changed = false;
        if let Some(file) = self.cfg.ap_file.clone() {
            match super::load(&file) {
                Ok(ap) => {
                    self.note(0, None);
                    if self.ap.as_ref() != Some(&ap) {
                        changed |= self.role == Role::AccessPoint && self.ap.is_some();
                        self.ap = Some(ap);
                    }
                }
                Err(e) => self.note(0, Some(&e)),
            }
        }
        if let Some(file) = self.cfg.networks_file.clone() {
            match networks::load(&file) {
                Ok(list) => {
                    self.note(1, None);
                    if list != self.networks {
                        changed |= self.role == Role::Client;
                        self.rescan_now = true;
                        self.networks = list;
                    }
                }
                Err(e) => self.note(1, Some(&e)),
            }
        }
        changed
    }

    /// A file's error (or none): logged when it first appears or changes,
    /// and shown in the status while it lasts.
    fn note(&mut self, which: usize, e: Option<&WifiError>) {
        let text = e.map(ToString::to_string);
        if text != self.file_errors[which] {
            if let Some(t) = &text {
                warn!("wifi: {t}");
            }
            self.file_errors[which] = text;
        }
    }

    /// Stops whatever runs and starts `role`'s program.
    fn become_(&mut self, role: Role, why: &str) {
        self.stop_child();
        self.role = role;
        self.since = now_unix();
        self.lost_since = Some(Instant::now());
        self.restart_at = None;
        match self.start(role) {
            Ok(child) => {
                self.start_error = None;
                self.child = Some(child);
                match role {
                    Role::AccessPoint => info!(
                        "wifi: access point {} opened ({why})",
                        self.ap.as_ref().map(|a| a.ssid.as_str()).unwrap_or("?")
                    ),
                    Role::Client => info!(
                        "wifi: joining a known network ({} known; {why})",
                        self.networks.len()
                    ),
                }
            }
            Err(e) => {
                warn!("wifi: could not start the {role:?}: {e}");
                self.start_error = Some(e);
                self.restart_at = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }

    fn start(&mut self, role: Role) -> Result<Child, String> {
        let (program, conf_name, conf) = match role {
            Role::AccessPoint => {
                let ap = self.ap.as_ref().ok_or("no access point file")?;
                let conf = super::hostapd_conf(
                    ap,
                    &self.cfg.interface,
                    self.cfg.country.as_deref(),
                    self.sae,
                )
                .map_err(|e| e.to_string())?;
                ("hostapd", "hostapd.conf", conf)
            }
            Role::Client => {
                let conf = networks::wpa_conf(&self.networks, self.cfg.country.as_deref())
                    .map_err(|e| e.to_string())?;
                ("wpa_supplicant", "wpa_supplicant.conf", conf)
            }
        };
        let path = self.dir.join(conf_name);
        super::write_private(&path, &conf).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(program);
        match role {
            Role::AccessPoint => cmd.arg(&path),
            Role::Client => cmd
                .args(["-D", "nl80211", "-i", &self.cfg.interface, "-c"])
                .arg(&path),
        };
        cmd.stdin(Stdio::null());
        if role == Role::Client {
            // Its own lines go to the journal beside this process's.
            return cmd.spawn().map_err(|e| format!("{program}: {e}"));
        }
        // hostapd's lines too, read on the way for AP-ENABLED.
        self.ap_enabled.store(false, Ordering::Relaxed);
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        if let Some(out) = child.stdout.take() {
            let enabled = self.ap_enabled.clone();
            self.ap_reader = Some(std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains("AP-ENABLED") {
                        enabled.store(true, Ordering::Relaxed);
                    }
                    eprintln!("{line}");
                }
            }));
        }
        Ok(child)
    }

    fn stop_child(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Whether a known network is in range (a scan; with `ap_force` while
    /// the access point stays up).
    /// A scan that fails (the radio busy) leaves a pending one pending.
    fn known_in_range(&mut self, ap_force: bool) -> bool {
        self.last_scan = Some(Instant::now());
        let mut args = vec!["dev", self.cfg.interface.as_str(), "scan"];
        if ap_force {
            args.push("ap-force");
        }
        let Ok(out) = run_quiet("iw", &args) else {
            return false;
        };
        self.rescan_now = false;
        let seen = ssids_in_scan(&out);
        self.networks.iter().any(|n| seen.contains(&n.ssid))
    }

    fn tick(&mut self) {
        let changed = self.reload();
        let mode = self.cfg.mode;
        // The child ended on its own: started again, after a pause.
        if let Some(child) = &mut self.child
            && let Ok(Some(how)) = child.try_wait()
        {
            self.child = None;
            // Every line hostapd wrote before it ended, read.
            if let Some(reader) = self.ap_reader.take() {
                let _ = reader.join();
            }
            if self.role == Role::AccessPoint
                && self.sae
                && !self.ap_enabled.load(Ordering::Relaxed)
            {
                // Never enabled with SAE: this radio cannot do it as an
                // access point. WPA2 alone, at once.
                self.sae = false;
                warn!(
                    "wifi: hostapd ended ({how}) before the access point was enabled with \
                     WPA3-SAE beside WPA2: WPA2 alone on this radio from now on"
                );
                self.become_(Role::AccessPoint, "WPA2 alone");
                return;
            }
            self.child_failures += 1;
            if self.child_failures == 1 || self.child_failures.is_power_of_two() {
                warn!(
                    "wifi: the {:?}'s program ended ({how}); started again in 5 s ({} times so far)",
                    self.role, self.child_failures
                );
            }
            self.restart_at = Some(Instant::now() + Duration::from_secs(5));
        }
        if self.child.is_none() && self.restart_at.is_some_and(|t| Instant::now() >= t) {
            self.become_(self.role, "again");
        }
        match self.role {
            Role::AccessPoint => {
                if changed {
                    self.become_(Role::AccessPoint, "its name or passphrase changed");
                }
                let clients = run_quiet("iw", &["dev", &self.cfg.interface, "station", "dump"])
                    .map(|o| count_stations(&o))
                    .unwrap_or(0);
                let since_scan = self.last_scan.map(|t| t.elapsed());
                let due = |d: u64| since_scan.is_none_or(|e| e >= Duration::from_secs(d));
                if mode == WifiMode::Auto
                    && !self.networks.is_empty()
                    && ((self.rescan_now && due(5))
                        || (clients == 0 && due(self.cfg.rescan_seconds)))
                    && self.known_in_range(true)
                {
                    self.become_(Role::Client, "a known network is in range");
                    return;
                }
                self.publish(WifiStatus {
                    state: "access-point".into(),
                    ssid: self.ap.as_ref().map(|a| a.ssid.clone()),
                    clients: Some(clients),
                    ..Default::default()
                });
            }
            Role::Client => {
                if mode == WifiMode::Auto && self.networks.is_empty() {
                    self.become_(Role::AccessPoint, "no known network is left");
                    return;
                }
                if changed {
                    self.become_(Role::Client, "the known networks changed");
                }
                let link = run_quiet("iw", &["dev", &self.cfg.interface, "link"])
                    .map(|o| parse_link(&o))
                    .unwrap_or_default();
                if link.ssid.is_some() {
                    self.lost_since = None;
                } else {
                    let since = *self.lost_since.get_or_insert_with(Instant::now);
                    let fallback = Duration::from_secs(self.cfg.fallback_seconds);
                    if mode == WifiMode::Auto && since.elapsed() >= fallback {
                        self.become_(
                            Role::AccessPoint,
                            &format!("no known network for {} s", self.cfg.fallback_seconds),
                        );
                        return;
                    }
                }
                self.publish(WifiStatus {
                    state: "client".into(),
                    connected: Some(link.ssid.is_some()),
                    ssid: link.ssid,
                    signal_dbm: link.signal_dbm,
                    ..Default::default()
                });
            }
        }
    }

    /// Writes the status if it changed (the error and start time kept).
    fn publish(&mut self, mut next: WifiStatus) {
        next.since = self.since;
        if next.error.is_none() {
            next.error = self
                .start_error
                .clone()
                .or_else(|| self.file_errors.iter().flatten().next().cloned());
        }
        if next != self.status {
            if let Err(e) = status::write(&self.cfg.status_file, &next) {
                warn!("wifi: {}: {e}", self.cfg.status_file.display());
            }
            self.status = next;
        }
    }
}

/// A program's stdout, if it ran and succeeded.
fn run_quiet(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program}: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The joined network as `iw dev IF link` says it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub ssid: Option<String>,
    pub signal_dbm: Option<i32>,
}

/// Parses `iw dev IF link`: "Not connected." or "Connected to ..." with
/// "SSID: name" and "signal: -42 dBm" lines.
pub fn parse_link(out: &str) -> Link {
    if !out.trim_start().starts_with("Connected to") {
        return Link::default();
    }
    let mut link = Link::default();
    for line in out.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix("SSID: ") {
            link.ssid = Some(s.to_string());
        } else if let Some(s) = line.strip_prefix("signal: ") {
            link.signal_dbm = s.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    link
}

/// The stations `iw dev IF station dump` lists.
pub fn count_stations(out: &str) -> u32 {
    out.lines().filter(|l| l.starts_with("Station ")).count() as u32
}

/// The SSIDs `iw dev IF scan` saw.
pub fn ssids_in_scan(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("SSID: "))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iws_answers_are_read() {
        let joined = "Connected to 02:00:00:00:02:00 (on wlan0)\n\tSSID: home net\n\tfreq: 2437\n\
                      \tRX: 1234 bytes (10 packets)\n\tsignal: -30 dBm\n\ttx bitrate: 54.0 MBit/s\n";
        assert_eq!(
            parse_link(joined),
            Link {
                ssid: Some("home net".into()),
                signal_dbm: Some(-30)
            }
        );
        assert_eq!(parse_link("Not connected.\n"), Link::default());
        assert_eq!(parse_link(""), Link::default());
        let dump = "Station 02:00:00:00:01:00 (on wlan0)\n\tinactive time:\t10 ms\n\
                    Station 02:00:00:00:03:00 (on wlan0)\n\tsignal: -30 dBm\n";
        assert_eq!(count_stations(dump), 2);
        assert_eq!(count_stations(""), 0);
        let scan = "BSS 02:00:00:00:02:00(on wlan0)\n\tfreq: 2437\n\tSSID: home net\n\
                    BSS 02:00:00:00:00:00(on wlan0)\n\tSSID: blackbox-3F9A\n\tRSN:\t * Version: 1\n";
        assert_eq!(ssids_in_scan(scan), vec!["home net", "blackbox-3F9A"]);
    }
}
