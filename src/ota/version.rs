//! Versions of the system and of bundles, and the rule that an update may
//! not go backwards unless the owner forces it.
//!
//! A version is dotted numbers with an optional `-pre-release` and an
//! ignored `+build` (`0.2.0`, `0.2.0-rc.1`, `1.0.0+20261128`), compared as
//! semantic versions: numbers numerically, a pre-release before its
//! release. The running system's version is `IMAGE_VERSION=` in
//! `/etc/os-release` (written by `image/build.sh`); a bundle's is
//! `version=` in the `[update]` section of its `manifest.raucm`. RAUC runs
//! the check as its `pre-install` handler (`blackbox ota pre-install`).

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    numbers: Vec<u64>,
    pre: Option<String>,
    text: String,
}

/// Why a version could not be read or an update is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum VersionError {
    /// Not a version.
    Malformed(String),
    /// The file has none.
    Missing(PathBuf, &'static str),
    /// The file cannot be read.
    Unreadable(PathBuf, String),
    /// The bundle is older than the running system.
    Downgrade { running: String, bundle: String },
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(v) => write!(f, "{v:?} is not a version (like 1.2.3)"),
            Self::Missing(p, key) => write!(f, "{}: no {key}", p.display()),
            Self::Unreadable(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            Self::Downgrade { running, bundle } => write!(
                f,
                "refusing to install {bundle}: it is older than the running {running} \
                 (`blackbox update --force FILE` installs it anyway)"
            ),
        }
    }
}

impl std::error::Error for VersionError {}

impl Version {
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let bad = || VersionError::Malformed(s.to_string());
        let core = s.trim().split('+').next().unwrap_or("");
        let (numbers, pre) = match core.split_once('-') {
            Some((n, p)) if !p.is_empty() => (n, Some(p.to_string())),
            Some(_) => return Err(bad()),
            None => (core, None),
        };
        let numbers = numbers
            .split('.')
            .map(|n| n.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            numbers,
            pre,
            text: s.trim().to_string(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        return match (x.next(), y.next()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => p.cmp(q),
                };
                if o == Ordering::Equal {
                    continue;
                }
                o
            }
        };
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.numbers.len().max(other.numbers.len());
        for i in 0..n {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            if a != b {
                return a.cmp(&b);
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => cmp_pre(a, b),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The value of `key` in `section` of an INI-style file (`None` for a
/// file without sections, like os-release).
fn ini_value(text: &str, section: Option<&str>, key: &str) -> Option<String> {
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            continue;
        }
        if current.as_deref() != section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

fn read(path: &Path) -> Result<String, VersionError> {
    std::fs::read_to_string(path)
        .map_err(|e| VersionError::Unreadable(path.to_path_buf(), e.to_string()))
}

/// The running system's version (`IMAGE_VERSION` in os-release).
pub fn running(os_release: &Path) -> Result<Version, VersionError> {
    let v = ini_value(&read(os_release)?, None, "IMAGE_VERSION")
        .ok_or_else(|| VersionError::Missing(os_release.to_path_buf(), "IMAGE_VERSION"))?;
    Version::parse(&v)
}

/// A mounted bundle's version (its manifest's `[update] version`).
pub fn bundle(mount_point: &Path) -> Result<Version, VersionError> {
    let manifest = mount_point.join("manifest.raucm");
    let v = ini_value(&read(&manifest)?, Some("update"), "version")
        .ok_or_else(|| VersionError::Missing(manifest.clone(), "[update] version"))?;
    Version::parse(&v)
}

/// Whether `bundle` may replace `running`: anything but an older version,
/// unless forced.
pub fn allowed(running: &Version, bundle: &Version, force: bool) -> Result<(), VersionError> {
    if bundle < running && !force {
        return Err(VersionError::Downgrade {
            running: running.to_string(),
            bundle: bundle.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn orders_like_semver() {
        let list = [
            "0.1.0",
            "0.1.1",
            "0.2.0-alpha",
            "0.2.0-alpha.2",
            "0.2.0-alpha.10",
            "0.2.0-beta",
            "0.2.0",
            "0.10.0",
            "1.0.0",
        ];
        for w in list.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.2"), v("1.2.0").clone().max(v("1.2")));
        assert_eq!(v("1.0.0+abc").cmp(&v("1.0.0+def")), Ordering::Equal);
    }

    #[test]
    fn refuses_non_versions() {
        for s in ["", "a.b", "1..2", "1.2-", "v1.2"] {
            assert!(Version::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn a_downgrade_needs_force() {
        assert!(allowed(&v("0.2.0"), &v("0.3.0"), false).is_ok());
        assert!(
            allowed(&v("0.2.0"), &v("0.2.0"), false).is_ok(),
            "a reinstall"
        );
        assert!(matches!(
            allowed(&v("0.2.0"), &v("0.1.9"), false),
            Err(VersionError::Downgrade { .. })
        ));
        assert!(allowed(&v("0.2.0"), &v("0.1.9"), true).is_ok());
    }

    #[test]
    fn reads_os_release_and_manifests() {
        let dir = super::super::scratch("version");
        std::fs::write(
            dir.join("os-release"),
            "NAME=\"Debian\"\nIMAGE_ID=blackbox\nIMAGE_VERSION=\"0.3.1\"\n",
        )
        .unwrap();
        assert_eq!(running(&dir.join("os-release")).unwrap(), v("0.3.1"));
        std::fs::write(
            dir.join("manifest.raucm"),
            "[update]\ncompatible=blackbox-qemu-x86_64\nversion=0.4.0\n\n[image.rootfs]\nversion=9\n",
        )
        .unwrap();
        assert_eq!(bundle(&dir).unwrap(), v("0.4.0"));
        std::fs::write(dir.join("manifest.raucm"), "[update]\ncompatible=x\n").unwrap();
        assert!(matches!(bundle(&dir), Err(VersionError::Missing(..))));
    }
}
