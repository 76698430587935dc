//! The owner's known Wi-Fi networks (`wifi.networks_file`, on /data,
//! owner-only): which ones the dashcam may join in `client` and `auto`
//! mode, and the wpa_supplicant configuration they make. One network a
//! line, `SSID<TAB>passphrase` (an SSID has no control characters and a
//! passphrase is printable ASCII: neither can hold a tab or a newline).
//! Passphrases are never printed, not even in a debug dump.

use std::fmt;
use std::path::Path;

use super::{WifiError, check_passphrase, check_ssid, read_own, write_private};

/// At most this many known networks (a car, a home, a work place...).
pub const MAX_NETWORKS: usize = 16;

/// One known network.
#[derive(Clone, PartialEq, Eq)]
pub struct Network {
    pub ssid: String,
    pub passphrase: String,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("ssid", &self.ssid)
            .field("passphrase", &"…")
            .finish()
    }
}

/// The known networks; none when the file does not exist.
pub fn load(path: &Path) -> Result<Vec<Network>, WifiError> {
    let text = match read_own(path) {
        Ok(t) => t,
        Err(WifiError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        // The line itself is not quoted: it holds a passphrase.
        let Some((ssid, passphrase)) = line.split_once('\t') else {
            return Err(WifiError::Parse(
                path.into(),
                format!("line {} is not SSID<TAB>passphrase", n + 1),
            ));
        };
        check_ssid(ssid)?;
        check_passphrase(passphrase)?;
        out.push(Network {
            ssid: ssid.into(),
            passphrase: passphrase.into(),
        });
    }
    Ok(out)
}

/// Writes the list (owner-only, atomically) after checking every entry.
pub fn save(path: &Path, networks: &[Network]) -> Result<(), WifiError> {
    if networks.len() > MAX_NETWORKS {
        return Err(WifiError::Parse(
            path.into(),
            format!("at most {MAX_NETWORKS} known networks"),
        ));
    }
    let mut text = String::new();
    for n in networks {
        check_ssid(&n.ssid)?;
        check_passphrase(&n.passphrase)?;
        text.push_str(&format!("{}\t{}\n", n.ssid, n.passphrase));
    }
    write_private(path, &text)
}

/// `networks` with `add` in place of any network of the same name.
pub fn with(networks: &[Network], add: Network) -> Vec<Network> {
    let mut out: Vec<Network> = networks
        .iter()
        .filter(|n| n.ssid != add.ssid)
        .cloned()
        .collect();
    out.push(add);
    out
}

/// wpa_supplicant's configuration to join any of `networks` (WPA2-PSK or
/// WPA3-SAE, whichever the network offers; management frames protected
/// where it can). The SSID goes in hex, so no character of it can end
/// the string early; the passphrase is printable ASCII without a newline
/// (checked), which wpa_supplicant reads to the line's last quote.
pub fn wpa_conf(networks: &[Network], country: Option<&str>) -> Result<String, WifiError> {
    let mut conf = String::from("ap_scan=1\n");
    if let Some(c) = country {
        conf.push_str(&format!("country={}\n", super::check_country(c)?));
    }
    for n in networks {
        check_ssid(&n.ssid)?;
        check_passphrase(&n.passphrase)?;
        let hex: String = n.ssid.bytes().map(|b| format!("{b:02x}")).collect();
        conf.push_str(&format!(
            "network={{\n\tssid={hex}\n\tpsk=\"{}\"\n\tkey_mgmt=WPA-PSK SAE\n\tieee80211w=1\n}}\n",
            n.passphrase
        ));
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ssid: &str, pass: &str) -> Network {
        Network {
            ssid: ssid.into(),
            passphrase: pass.into(),
        }
    }

    #[test]
    fn the_list_round_trips_owner_only_and_replaces_by_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("blackbox-nets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("wifi-networks");
        assert!(load(&file).unwrap().is_empty());
        let list = with(
            &[net("home", "first pass 1")],
            net("work \"5G\"", "second-pass"),
        );
        let list = with(&list, net("home", "new home pass"));
        save(&file, &list).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = load(&file).unwrap();
        assert_eq!(back, list);
        assert_eq!(back[1].passphrase, "new home pass");
        assert!(!format!("{back:?}").contains("new home pass"));
        // Nothing of the file's text in an error (it holds passphrases).
        std::fs::write(&file, "home secret-words\n").unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
        // A link is not followed.
        let link = dir.join("link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(load(&link).is_err());
        assert!(save(&file, &vec![net("x", "abcdefgh"); MAX_NETWORKS + 1]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_adds_a_line_to_wpa_supplicants_file() {
        let conf = wpa_conf(&[net("home\"}", "pass\"word1")], Some("de")).unwrap();
        assert!(conf.starts_with("ap_scan=1\ncountry=DE\n"));
        assert!(conf.contains("\tssid=686f6d65227d\n"));
        assert!(conf.contains("\tpsk=\"pass\"word1\"\n"));
        for (ssid, pass) in [
            ("a\nb", "abcdefgh"),
            ("home", "abc\ndefgh"),
            ("home", "short"),
        ] {
            assert!(wpa_conf(&[net(ssid, pass)], None).is_err(), "{ssid:?}");
        }
    }
}
