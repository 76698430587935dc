//! Installing a bundle: `blackbox update FILE` on the command line, and the
//! installs the web page asks for.
//!
//! Either way it is `rauc install` (which checks the signature, the
//! `compatible` string and, through the `pre-install` handler, the version)
//! followed by a reboot into the new slot as a one-shot tryboot. The web
//! server runs as an unprivileged, sandboxed user and cannot install
//! anything itself: it streams the upload into the update directory on
//! `/data` and drops a request file there; `blackbox-update.path` notices it
//! and starts `blackbox update --queued DIR` as root, which installs,
//! reports progress in `DIR/status` (read by `GET /api/update`) and reboots.
//! The request carries nothing but the bundle: a downgrade needs `--force`,
//! which only root on the command line can give.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::owned_dir::OwnedDir;

/// The bundle a queued install takes, in the update directory.
pub const BUNDLE: &str = "bundle.raucb";
/// Its presence asks for an install.
pub const REQUEST: &str = "request";
/// Progress, as JSON ([`Progress`]).
pub const STATUS: &str = "status";
/// The running system's version is here (`IMAGE_VERSION=`).
pub const OS_RELEASE: &str = "/etc/os-release";
/// Lets the next install go backwards (made by `--force`, used once).
pub const FORCE_FLAG: &str = "/run/blackbox/allow-downgrade";

/// What an install is doing, for the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// `idle`, `uploading`, `installing`, `rebooting` or `failed`.
    pub state: String,
    /// 0-100.
    pub percent: u8,
    /// The last thing RAUC said.
    pub message: String,
}

/// Why an install failed.
#[derive(Debug)]
pub enum InstallError {
    Io(&'static str, PathBuf, std::io::Error),
    /// `rauc install` failed; its last words.
    Rauc(String),
    /// The reboot could not be started.
    Reboot(String),
    /// The bundle may not replace the running system.
    Refused(super::version::VersionError),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(what, p, e) => write!(f, "cannot {what} {}: {e}", p.display()),
            Self::Rauc(e) => write!(f, "the update was not installed: {e}"),
            Self::Reboot(e) => write!(f, "installed, but cannot reboot: {e}"),
            Self::Refused(e) => write!(f, "the update was not installed: {e}"),
        }
    }
}

impl std::error::Error for InstallError {}

/// The percentage and text of a `rauc install` progress line
/// (` 40% Checking slot boot.1 done.`), if it is one.
pub fn progress_line(line: &str) -> Option<(u8, &str)> {
    let (n, rest) = line.trim_start().split_once('%')?;
    let n: u8 = n.trim().parse().ok()?;
    Some((n.min(100), rest.trim()))
}

/// The value of `KEY='value'` in `rauc info --output-format=shell` output.
fn shell_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('\'').to_string())
        .next()
}

/// Checks the bundle before anything is written: `rauc info` verifies its
/// signature against the keyring and reads its manifest; a version older
/// than the running one is refused unless `force`. (RAUC's pre-install
/// handler enforces the same rule for a `rauc install` run by hand; this
/// gives the owner the reason in words.)
pub fn precheck(file: &Path, os_release: &Path, force: bool) -> Result<String, InstallError> {
    let out = Command::new("rauc")
        .args(["info", "--output-format=shell"])
        .arg(file)
        .output()
        .map_err(|e| InstallError::Rauc(format!("cannot run rauc: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("rauc info failed")
            .trim()
            .to_string();
        return Err(InstallError::Rauc(why));
    }
    let version = shell_value(&text, "RAUC_MF_VERSION")
        .ok_or_else(|| InstallError::Rauc("the bundle names no version".into()))?;
    let bundle = super::version::Version::parse(&version).map_err(InstallError::Refused)?;
    let running = super::version::running(os_release).map_err(InstallError::Refused)?;
    super::version::allowed(&running, &bundle, force).map_err(InstallError::Refused)?;
    Ok(format!("{running} -> {bundle}"))
}

/// Runs `rauc install FILE`, telling `report` as it goes.
pub fn rauc_install(file: &Path, mut report: impl FnMut(Progress)) -> Result<(), InstallError> {
    // rauc prints its progress with stdio, which a pipe would buffer to
    // the end: stdbuf (coreutils) makes it line-buffered, so the page and
    // the log see each step as it happens.
    let mut child = Command::new("stdbuf")
        .args(["-oL", "rauc", "install"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| InstallError::Rauc(format!("cannot run rauc: {e}")))?;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = stderr {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let mut last = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some((percent, message)) = progress_line(&line) {
                report(Progress {
                    state: "installing".into(),
                    percent,
                    message: message.to_string(),
                });
            }
            last = line;
        }
    }
    let status = child
        .wait()
        .map_err(|e| InstallError::Rauc(format!("rauc: {e}")))?;
    let errors = errors.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let why = errors
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(last.as_str())
        .trim()
        .to_string();
    Err(InstallError::Rauc(why))
}

/// `systemctl reboot`: the backend armed the tryboot through systemd's
/// reboot parameter.
pub fn reboot() -> Result<(), InstallError> {
    let status = Command::new("systemctl")
        .arg("reboot")
        .status()
        .map_err(|e| InstallError::Reboot(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError::Reboot(format!("systemctl reboot: {status}")))
    }
}

/// `blackbox update FILE`.
pub fn update(file: &Path, force: bool, then_reboot: bool) -> Result<(), InstallError> {
    let flag = Path::new(FORCE_FLAG);
    if force {
        if let Some(dir) = flag.parent() {
            fs::create_dir_all(dir).map_err(|e| InstallError::Io("create", dir.into(), e))?;
        }
        fs::write(flag, "1\n").map_err(|e| InstallError::Io("write", flag.into(), e))?;
    }
    let result = precheck(file, Path::new(OS_RELEASE), force).and_then(|what| {
        println!("installing {what}");
        rauc_install(file, |_| {})
    });
    let _ = fs::remove_file(flag);
    result?;
    if then_reboot {
        println!("installed; rebooting into the new version (it is kept once it proves healthy)");
        reboot()?;
    }
    Ok(())
}

/// Writes the progress file atomically (a new file, renamed into place;
/// nothing in `dir` is followed).
pub fn write_status(dir: &Path, p: &Progress) -> Result<(), InstallError> {
    let d = OwnedDir::open(dir).map_err(|e| InstallError::Io("open", dir.into(), e))?;
    write_status_in(&d, p)
}

fn write_status_in(d: &OwnedDir, p: &Progress) -> Result<(), InstallError> {
    let text = serde_json::to_string(p).unwrap_or_default();
    d.replace(STATUS, text.as_bytes(), 0o644)
        .map_err(|e| InstallError::Io("write", d.path().join(STATUS), e))
}

/// The progress file, or `idle`.
pub fn read_status(dir: &Path) -> Progress {
    fs::read(dir.join(STATUS))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| Progress {
            state: "idle".into(),
            ..Progress::default()
        })
}

/// `blackbox update --queued DIR`: the install the page asked for. DIR
/// belongs to the unprivileged service, so every name in it is used without
/// following links ([`OwnedDir`]): the bundle must be a regular file, and
/// the progress file is written as a new file renamed into place.
pub fn queued(dir: &Path, then_reboot: bool) -> Result<(), InstallError> {
    let d = OwnedDir::open(dir).map_err(|e| InstallError::Io("open", dir.into(), e))?;
    let bundle = dir.join(BUNDLE);
    // Taken at once, so a failure does not loop through the path unit.
    let _ = d.remove(REQUEST);
    // Checked here; RAUC opens the path itself, and a name swapped in
    // between could make it read another file (never write one), which
    // its signature check then refuses.
    let result = d
        .open_regular(BUNDLE)
        .map_err(|e| InstallError::Io("open", bundle.clone(), e))
        .and_then(|_| precheck(&bundle, Path::new(OS_RELEASE), false))
        .and_then(|_| {
            rauc_install(&bundle, |p| {
                let _ = write_status_in(&d, &p);
            })
        });
    let _ = d.remove(BUNDLE);
    let done = match &result {
        Ok(()) => Progress {
            state: if then_reboot {
                "rebooting"
            } else {
                "installed"
            }
            .into(),
            percent: 100,
            message: "installed; rebooting into the new version".into(),
        },
        Err(e) => Progress {
            state: "failed".into(),
            percent: 100,
            message: e.to_string(),
        },
    };
    write_status_in(&d, &done)?;
    result?;
    if then_reboot {
        reboot()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rauc_progress_lines() {
        assert_eq!(progress_line("  0% Installing"), Some((0, "Installing")));
        assert_eq!(
            progress_line(" 40% Checking slot boot.1 done."),
            Some((40, "Checking slot boot.1 done."))
        );
        assert_eq!(
            progress_line("100% Installing done."),
            Some((100, "Installing done."))
        );
        assert_eq!(progress_line("installing `/x.raucb`: ok"), None);
    }

    #[test]
    fn reads_rauc_info() {
        let text = "RAUC_MF_COMPATIBLE='blackbox-qemu-x86_64'\nRAUC_MF_VERSION='1.1.0'\nRAUC_MF_DESCRIPTION=''\n";
        assert_eq!(
            shell_value(text, "RAUC_MF_VERSION").as_deref(),
            Some("1.1.0")
        );
        assert_eq!(
            shell_value(text, "RAUC_MF_COMPATIBLE").as_deref(),
            Some("blackbox-qemu-x86_64")
        );
        assert_eq!(shell_value(text, "RAUC_MF_BUILD"), None);
    }

    #[test]
    fn status_round_trips() {
        let dir = super::super::scratch("install-status");
        assert_eq!(read_status(&dir).state, "idle");
        let p = Progress {
            state: "installing".into(),
            percent: 40,
            message: "Checking".into(),
        };
        write_status(&dir, &p).unwrap();
        assert_eq!(read_status(&dir), p);
    }
}
