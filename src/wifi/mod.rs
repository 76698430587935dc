//! The dashcam's own Wi-Fi access point, as data: its name
//! (`blackbox-XXXX`, from the machine id, so two dashcams in one car park
//! differ), its passphrase (made for each card at first boot, never a
//! shared default), the file that keeps them on `/data` (owner-only), and
//! the hostapd configuration they make. Everything that reaches hostapd's
//! line-oriented file is checked here first: an SSID or passphrase with a
//! newline would otherwise add lines of the owner's (or an attacker's)
//! choosing to it.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub mod networks;
pub mod status;
pub mod supervisor;

/// What can be wrong with the access point's settings or their file.
#[derive(Debug)]
pub enum WifiError {
    /// An SSID hostapd cannot take (1 to 32 bytes, no control characters).
    Ssid(String),
    /// A passphrase WPA cannot take (8 to 63 printable ASCII characters).
    Passphrase(&'static str),
    /// Not an ISO 3166-1 alpha-2 country code.
    Country(String),
    /// The file could not be read or written.
    Io(PathBuf, io::Error),
    /// The file is not what this module writes.
    Parse(PathBuf, String),
    /// No randomness for a new passphrase.
    Random(String),
}

impl fmt::Display for WifiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ssid(s) => write!(
                f,
                "{s:?} cannot be a Wi-Fi name: 1 to 32 bytes, no control characters"
            ),
            Self::Passphrase(why) => write!(f, "the Wi-Fi passphrase {why}"),
            Self::Country(c) => write!(
                f,
                "{c:?} is not a country code (two letters, as in ISO 3166-1: GB, DE, US)"
            ),
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::Parse(p, why) => write!(f, "{}: {why}", p.display()),
            Self::Random(e) => write!(f, "no randomness for a passphrase: {e}"),
        }
    }
}

impl std::error::Error for WifiError {}

/// The access point's name and passphrase.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessPoint {
    pub ssid: String,
    pub passphrase: String,
}

// Never print the passphrase, not even in a debug dump.
impl fmt::Debug for AccessPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessPoint")
            .field("ssid", &self.ssid)
            .field("passphrase", &"…")
            .finish()
    }
}

/// `blackbox-` and the last four hex digits of the machine id, upper case
/// (`blackbox-3F9A`); `blackbox` alone if the id has fewer.
pub fn ssid_for(machine_id: &str) -> String {
    let hex: Vec<char> = machine_id
        .trim()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    if hex.len() < 4 {
        return "blackbox".into();
    }
    let tail: String = hex[hex.len() - 4..].iter().collect();
    format!("blackbox-{}", tail.to_ascii_uppercase())
}

/// An SSID hostapd takes as one line: 1 to 32 bytes, no control
/// characters.
pub fn check_ssid(ssid: &str) -> Result<(), WifiError> {
    if ssid.is_empty() || ssid.len() > 32 || ssid.chars().any(char::is_control) {
        return Err(WifiError::Ssid(ssid.to_string()));
    }
    Ok(())
}

/// A WPA passphrase: 8 to 63 printable ASCII characters (IEEE 802.11's
/// rule; 64 would be read as a hex key).
pub fn check_passphrase(p: &str) -> Result<(), WifiError> {
    if p.len() < 8 {
        return Err(WifiError::Passphrase("needs at least 8 characters"));
    }
    if p.len() > 63 {
        return Err(WifiError::Passphrase("may have at most 63 characters"));
    }
    if !p.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(WifiError::Passphrase(
            "may hold printable ASCII characters only",
        ));
    }
    Ok(())
}

/// An ISO 3166-1 alpha-2 code, upper case (what hostapd's `country_code`
/// and the kernel's regulatory domain take).
pub fn check_country(c: &str) -> Result<String, WifiError> {
    crate::config::country_code(c).ok_or_else(|| WifiError::Country(c.to_string()))
}

/// A new access point for this card: the name from the machine id, a new
/// random passphrase (four groups of four from an alphabet without look-
/// alikes, about 90 bits: easy to type on a phone).
pub fn new_access_point(machine_id: &str) -> Result<AccessPoint, WifiError> {
    let passphrase =
        crate::auth::password::generate().map_err(|e| WifiError::Random(e.to_string()))?;
    Ok(AccessPoint {
        ssid: ssid_for(machine_id),
        passphrase,
    })
}

/// The file on `/data`: two lines, `ssid=…` and `passphrase=…`.
pub fn load(path: &Path) -> Result<AccessPoint, WifiError> {
    let text = read_own(path)?;
    let mut ssid = None;
    let mut passphrase = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match line.split_once('=') {
            Some(("ssid", v)) => ssid = Some(v.to_string()),
            Some(("passphrase", v)) => passphrase = Some(v.to_string()),
            _ => {
                return Err(WifiError::Parse(
                    path.into(),
                    "a line that is neither ssid= nor passphrase=".into(),
                ));
            }
        }
    }
    let (Some(ssid), Some(passphrase)) = (ssid, passphrase) else {
        return Err(WifiError::Parse(
            path.into(),
            "needs both ssid= and passphrase=".into(),
        ));
    };
    check_ssid(&ssid)?;
    check_passphrase(&passphrase)?;
    Ok(AccessPoint { ssid, passphrase })
}

/// A small file of this module's, never through a symbolic link (root
/// reads the files the service user writes: a link could point it at any
/// file of the system), at most 64 KiB.
pub(crate) fn read_own(path: &Path) -> Result<String, WifiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| WifiError::Io(path.into(), e))?;
    let mut text = String::new();
    f.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| WifiError::Io(path.into(), e))?;
    Ok(text)
}

/// Writes the file readable by its owner only, atomically (a temporary
/// file, fsync, rename), after checking both values.
pub fn save(path: &Path, ap: &AccessPoint) -> Result<(), WifiError> {
    check_ssid(&ap.ssid)?;
    check_passphrase(&ap.passphrase)?;
    write_private(
        path,
        &format!("ssid={}\npassphrase={}\n", ap.ssid, ap.passphrase),
    )
}

/// `text` in `path`, readable by its owner only, atomically (a temporary
/// file, fsync, rename).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), WifiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let io_err = |e| WifiError::Io(tmp.clone(), e);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(|e| WifiError::Io(path.into(), e))
}

/// hostapd's configuration for the access point on `interface`: 2.4 GHz
/// channel 6 (every phone has it), WPA2-PSK, and with `sae` WPA3-SAE
/// beside it in transition mode (management frames protected where the
/// phone can), and the regulatory country when one is set (without it the
/// kernel's world domain applies: the most restrictive channels and
/// powers).
pub fn hostapd_conf(
    ap: &AccessPoint,
    interface: &str,
    country: Option<&str>,
    sae: bool,
) -> Result<String, WifiError> {
    check_ssid(&ap.ssid)?;
    check_passphrase(&ap.passphrase)?;
    if interface.is_empty()
        || interface.len() > 15
        || !interface
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(WifiError::Parse(
            PathBuf::from("wifi.interface"),
            format!("{interface:?} is not an interface name"),
        ));
    }
    let mut conf = format!(
        "interface={interface}\ndriver=nl80211\nssid={}\nhw_mode=g\nchannel=6\n\
         wmm_enabled=1\nauth_algs=1\nwpa=2\nwpa_key_mgmt=WPA-PSK{}\n\
         rsn_pairwise=CCMP\nieee80211w=1\nwpa_passphrase={}\n",
        ap.ssid,
        if sae { " SAE" } else { "" },
        ap.passphrase
    );
    if let Some(c) = country {
        let c = check_country(c)?;
        conf.push_str(&format!("country_code={c}\nieee80211d=1\n"));
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_comes_from_the_machine_id() {
        assert_eq!(ssid_for("4c4c4544003a3f9a\n"), "blackbox-3F9A".to_string());
        assert_eq!(ssid_for(""), "blackbox");
    }

    #[test]
    fn nothing_adds_a_line_to_hostapds_file() {
        let good = AccessPoint {
            ssid: "blackbox-3F9A".into(),
            passphrase: "abcd-efgh-jkmn-pqrs".into(),
        };
        let conf = hostapd_conf(&good, "wlan0", Some("gb"), true).unwrap();
        assert!(conf.contains("ssid=blackbox-3F9A\n"));
        assert!(conf.contains("country_code=GB\nieee80211d=1\n"));
        assert!(conf.contains("wpa_key_mgmt=WPA-PSK SAE\n"));
        let wpa2 = hostapd_conf(&good, "wlan0", None, false).unwrap();
        assert!(wpa2.contains("wpa_key_mgmt=WPA-PSK\n") && !wpa2.contains("country"));
        for (ssid, pass) in [
            ("car\nwpa=0", "abcd-efgh-jkmn-pqrs"),
            ("blackbox", "abcdefgh\nwpa=0"),
            ("", "abcdefgh"),
            ("blackbox", "short"),
            ("blackbox", &"x".repeat(64)),
            (&"s".repeat(33), "abcdefgh"),
        ] {
            let ap = AccessPoint {
                ssid: ssid.into(),
                passphrase: pass.into(),
            };
            assert!(
                hostapd_conf(&ap, "wlan0", None, true).is_err(),
                "{ssid:?} {pass:?}"
            );
        }
        assert!(hostapd_conf(&good, "wlan0\nx", None, true).is_err());
        assert!(hostapd_conf(&good, "wlan0", Some("GBR"), true).is_err());
    }

    #[test]
    fn the_file_is_owner_only_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("blackbox-wifi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("wifi-ap");
        let ap = new_access_point("0123456789abcdef").unwrap();
        check_passphrase(&ap.passphrase).unwrap();
        save(&file, &ap).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&file).unwrap(), ap);
        assert!(!format!("{ap:?}").contains(&ap.passphrase));
        std::fs::write(&file, "ssid=x\n").unwrap();
        assert!(load(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
