//! `blackbox passwd` and `blackbox firstboot`: setting the password from a
//! terminal or a script, and giving a new dashcam a unique one (no universal
//! default password: ETSI EN 303 645 provision 5.1, the UK PSTI Act, the EU
//! Cyber Resilience Act). The clear text of a generated password goes where
//! only the owner reads it (a file on the card's boot partition, and the
//! serial console), never to a log.

use std::fmt;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::auth::password::{self, Password, PasswordError};

/// Why the command failed.
#[derive(Debug)]
pub enum AccountError {
    Password(PasswordError),
    Io(String, io::Error),
    /// The two entries on the terminal differ.
    Mismatch,
    /// Nothing was read.
    Empty,
    /// The device's certificate could not be made.
    Tls(crate::tls::TlsError),
    /// The access point's file could not be read or made.
    Wifi(crate::wifi::WifiError),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(e) => write!(f, "{e}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::Mismatch => f.write_str("the two passwords differ; nothing was changed"),
            Self::Empty => f.write_str("no password was given; nothing was changed"),
            Self::Tls(e) => write!(f, "{e}"),
            Self::Wifi(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AccountError {}

/// Reads a line from the terminal with echo off.
fn read_hidden(prompt: &str) -> Result<String, AccountError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    let fd = stdin.as_fd();
    let io_err = |e: nix::Error| AccountError::Io("terminal".into(), io::Error::from(e));
    let saved = tcgetattr(fd).map_err(io_err)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    let _ = io::stderr().flush();
    tcsetattr(fd, SetArg::TCSANOW, &quiet).map_err(io_err)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(fd, SetArg::TCSANOW, &saved);
    read.map_err(|e| AccountError::Io("terminal".into(), e))?;
    restored.map_err(io_err)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The new password: asked twice on a terminal, else one line of stdin.
fn new_password() -> Result<String, AccountError> {
    if io::stdin().is_terminal() {
        let first = read_hidden("New password: ")?;
        let second = read_hidden("Again: ")?;
        if first != second {
            return Err(AccountError::Mismatch);
        }
        return Ok(first);
    }
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| AccountError::Io("stdin".into(), e))?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        return Err(AccountError::Empty);
    }
    Ok(line)
}

/// `blackbox passwd FILE`.
pub fn passwd(file: &Path) -> Result<(), AccountError> {
    let clear = new_password()?;
    let p = Password::hash(&clear, false).map_err(AccountError::Password)?;
    p.save(file).map_err(AccountError::Password)?;
    eprintln!(
        "blackbox: password written to {} (restart blackbox to use it)",
        file.display()
    );
    Ok(())
}

/// What `firstboot` did.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstBoot {
    /// A password was already set: nothing changed.
    AlreadySet,
    /// A new password was made; its clear text went to `shown_in`.
    Generated { shown_in: Option<PathBuf> },
}

/// `blackbox firstboot --password-file FILE [--show-in TEXT]`: if FILE holds
/// no password, makes a unique one, stores its hash (marked, so the page asks
/// the owner to change it), writes the clear text to TEXT (on the boot
/// partition, where the owner reads it from a computer) and prints it on
/// stdout (the serial console, through the unit's StandardOutput=).
///
/// With `tls_dir`, a device without a certificate also gets its own key
/// and self-signed certificate there (`cert.pem`, `key.pem`), and the
/// certificate's SHA-256 fingerprint is shown beside the password, so the
/// owner can check what the browser shows before trusting it.
///
/// Without a password file only the certificate is made (the appliance
/// runs that step as the service user, so root never writes into a
/// directory the service owns).
///
/// With `wifi_ap`, a device without its access point's file gets one (a
/// name from the machine id, a new passphrase: src/wifi.rs), shown beside
/// the password too.
pub fn firstboot(what: &Plan) -> Result<FirstBoot, AccountError> {
    let Plan {
        password_file: file,
        show_in,
        tls_dir,
        tls_names,
        wifi_ap,
    } = *what;
    let (fingerprint, made) = match tls_dir {
        Some(dir) => {
            let (fp, made) = device_certificate(dir, tls_names)?;
            (Some(fp), made)
        }
        None => (None, false),
    };
    let (ap, ap_made) = match wifi_ap {
        Some(path) => {
            let (ap, made) = access_point(path)?;
            (Some(ap), made)
        }
        None => (None, false),
    };
    let already = match file {
        Some(file) => Password::load(file)
            .map_err(AccountError::Password)?
            .is_some(),
        None => true,
    };
    if already {
        // A device updated from a version without HTTPS: its new
        // certificate's fingerprint goes to the console (it is no secret).
        if made && let Some(fp) = &fingerprint {
            println!("blackbox: a new HTTPS certificate; its SHA-256 fingerprint is {fp}");
        }
        if ap_made && let Some(ap) = &ap {
            println!(
                "blackbox: a new Wi-Fi access point: {}, passphrase {}",
                ap.ssid, ap.passphrase
            );
        }
        return Ok(FirstBoot::AlreadySet);
    }
    let clear = password::generate().map_err(AccountError::Password)?;
    let p = Password::hash(&clear, true).map_err(AccountError::Password)?;
    let fp_line = fingerprint
        .as_ref()
        .map(|fp| format!("\nHTTPS certificate fingerprint (SHA-256):\n{fp}\n"))
        .unwrap_or_default();
    let ap_line = ap
        .as_ref()
        .map(|ap| {
            format!(
                "\nWi-Fi network: {}\nWi-Fi passphrase: {}\n",
                ap.ssid, ap.passphrase
            )
        })
        .unwrap_or_default();
    if let Some(text) = show_in {
        let note = format!(
            "blackbox dashcam password: {clear}\n{ap_line}{fp_line}\n\
             Open the dashcam's page and log in with it; the page will ask you\n\
             to choose your own, and this file is deleted once you have.\n"
        );
        write_private(text, &note).map_err(|e| AccountError::Io(text.display().to_string(), e))?;
    }
    // The hash last: if anything above failed, the next boot tries again.
    if let Some(file) = file {
        p.save(file).map_err(AccountError::Password)?;
    }
    println!("blackbox: the dashcam's password is {clear} (change it in the page)");
    if let Some(ap) = &ap {
        println!(
            "blackbox: the dashcam's Wi-Fi is {}, passphrase {}",
            ap.ssid, ap.passphrase
        );
    }
    if let Some(fp) = &fingerprint {
        println!("blackbox: the HTTPS certificate's SHA-256 fingerprint is {fp}");
    }
    Ok(FirstBoot::Generated {
        shown_in: show_in.map(Path::to_path_buf),
    })
}

/// What `firstboot` is asked to make (each part only if it is missing).
#[derive(Clone, Copy, Debug, Default)]
pub struct Plan<'a> {
    pub password_file: Option<&'a Path>,
    pub show_in: Option<&'a Path>,
    pub tls_dir: Option<&'a Path>,
    /// Names the certificate carries besides `tls::device_names`.
    pub tls_names: &'a [String],
    pub wifi_ap: Option<&'a Path>,
}

/// The access point in `path`, made if there is none (its name from
/// /etc/machine-id): the access point, and whether it is new.
fn access_point(path: &Path) -> Result<(crate::wifi::AccessPoint, bool), AccountError> {
    if path.exists() {
        return crate::wifi::load(path)
            .map(|ap| (ap, false))
            .map_err(AccountError::Wifi);
    }
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let ap = crate::wifi::new_access_point(&id).map_err(AccountError::Wifi)?;
    crate::wifi::save(path, &ap).map_err(AccountError::Wifi)?;
    Ok((ap, true))
}

/// The device's certificate in `dir`, made if there is none: its
/// fingerprint, and whether it is new.
fn device_certificate(dir: &Path, extra: &[String]) -> Result<(String, bool), AccountError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return crate::tls::load(&cert, &key)
            .map(|t| (t.fingerprint, false))
            .map_err(AccountError::Tls);
    }
    let mut names = crate::tls::device_names();
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    crate::tls::generate(&cert, &key, &names)
        .map(|fp| (fp, true))
        .map_err(AccountError::Tls)
}

/// Writes `text` readable by its owner only (where the file system has
/// permissions; the boot partition's FAT has none, and is the owner's).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firstboot_makes_one_password_once() {
        let dir = std::env::temp_dir().join(format!("blackbox-fb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        let text = dir.join("blackbox-password.txt");
        let r = firstboot(&Plan {
            password_file: Some(&file),
            show_in: Some(&text),
            ..Plan::default()
        })
        .unwrap();
        assert_eq!(
            r,
            FirstBoot::Generated {
                shown_in: Some(text.clone())
            }
        );
        let note = std::fs::read_to_string(&text).unwrap();
        let clear = note.lines().next().unwrap().rsplit(' ').next().unwrap();
        let p = Password::load(&file).unwrap().unwrap();
        assert!(p.first_boot && p.verify(clear.as_bytes()));
        assert_eq!(
            firstboot(&Plan {
                password_file: Some(&file),
                show_in: Some(&text),
                ..Plan::default()
            })
            .unwrap(),
            FirstBoot::AlreadySet
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_certificate_alone_then_the_password_beside_its_fingerprint() {
        let dir = std::env::temp_dir().join(format!("blackbox-fb-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tls = dir.join("tls");
        // The service user's step: the certificate only, no password.
        assert_eq!(
            firstboot(&Plan {
                tls_dir: Some(&tls),
                ..Plan::default()
            })
            .unwrap(),
            FirstBoot::AlreadySet
        );
        let fp = crate::tls::load(&tls.join("cert.pem"), &tls.join("key.pem"))
            .unwrap()
            .fingerprint;
        // Root's step reads it (never makes another) and shows it.
        let (file, text) = (dir.join("password"), dir.join("note.txt"));
        firstboot(&Plan {
            password_file: Some(&file),
            show_in: Some(&text),
            tls_dir: Some(&tls),
            ..Plan::default()
        })
        .unwrap();
        let note = std::fs::read_to_string(&text).unwrap();
        assert!(note.contains(&fp), "{note}");
        let again = crate::tls::load(&tls.join("cert.pem"), &tls.join("key.pem")).unwrap();
        assert_eq!(again.fingerprint, fp);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_wifi_passphrase_is_made_once_and_shown_beside_the_password() {
        let dir = std::env::temp_dir().join(format!("blackbox-fb-ap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (file, text, ap) = (
            dir.join("password"),
            dir.join("note.txt"),
            dir.join("wifi-ap"),
        );
        let plan = Plan {
            password_file: Some(&file),
            show_in: Some(&text),
            wifi_ap: Some(&ap),
            ..Plan::default()
        };
        firstboot(&plan).unwrap();
        let made = crate::wifi::load(&ap).unwrap();
        let note = std::fs::read_to_string(&text).unwrap();
        assert!(
            note.contains(&format!("Wi-Fi network: {}\n", made.ssid)),
            "{note}"
        );
        assert!(note.contains(&format!("Wi-Fi passphrase: {}\n", made.passphrase)));
        // Once made, it stays.
        firstboot(&plan).unwrap();
        assert_eq!(crate::wifi::load(&ap).unwrap(), made);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
