//! Who may use blackbox, and from where. With a password set (a file of an
//! argon2id hash, [`password`]), every route but the login page and
//! `/healthz` needs either a session cookie from the login page
//! ([`sessions`]) or HTTP Basic with the same password (players, curl,
//! Prometheus). Failed attempts are limited per address ([`limiter`]).
//! Independently of the password, requests must name one of the device's own
//! hosts, and those that change something must come from the page's own
//! origin ([`origin`]). Without a password blackbox serves loopback only.
//!
//! This module knows nothing of HTTP libraries: `crate::http` asks it about
//! header values and answers accordingly.

pub mod limiter;
pub mod origin;
pub mod password;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::Duration;

use blake2::{Blake2b512, Digest};
use subtle::ConstantTimeEq;

use crate::sync::lock;
use limiter::Limiter;
use origin::Hosts;
use password::{Password, PasswordError};
use sessions::Sessions;

/// How long a login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The authentication state of the running server.
pub struct Auth {
    file: Option<PathBuf>,
    password: RwLock<Option<Password>>,
    pub sessions: Sessions,
    pub limiter: Limiter,
    pub hosts: Hosts,
    /// A random key, and the keyed hash of the last credential that passed,
    /// so a Basic client (a player, Prometheus every 15 s) costs one argon2
    /// run, not one per request. Never the password itself. The key is
    /// drawn at the first check, not at start-up: `getrandom` blocks until
    /// the kernel's generator is seeded, which early in a boot without a
    /// hardware RNG can take minutes, and nothing but a login needs it.
    key: OnceLock<Option<[u8; 32]>>,
    verified: Mutex<Option<[u8; 64]>>,
}

/// Why a password change was refused.
#[derive(Debug)]
pub enum ChangeError {
    /// The current password given is wrong.
    Wrong,
    /// No password file is configured to write to.
    NoFile,
    Password(PasswordError),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Wrong => f.write_str("the current password is wrong"),
            Self::NoFile => f.write_str("no password file is configured (http.password_file)"),
            Self::Password(e) => write!(f, "{e}"),
        }
    }
}

impl Auth {
    /// Loads the password from `file` (none, or a missing file: no password).
    pub fn new(file: Option<&Path>, allowed_hosts: &[String]) -> Result<Self, PasswordError> {
        let password = match file {
            Some(f) => Password::load(f)?,
            None => None,
        };
        Ok(Self {
            file: file.map(Path::to_path_buf),
            password: RwLock::new(password),
            sessions: Sessions::new(SESSION_LIFETIME),
            limiter: Limiter::default(),
            hosts: Hosts::new(allowed_hosts),
            key: OnceLock::new(),
            verified: Mutex::new(None),
        })
    }

    fn current(&self) -> Option<Password> {
        self.password
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether a password is set (and so every route but the public ones
    /// needs it).
    pub fn required(&self) -> bool {
        self.current().is_some()
    }

    /// Whether the password is the one generated at first boot.
    pub fn first_boot(&self) -> bool {
        self.current().is_some_and(|p| p.first_boot)
    }

    /// The keyed hash of `clear`; none if no key could be drawn (then
    /// nothing is cached and every check runs argon2).
    fn fingerprint(&self, clear: &[u8]) -> Option<[u8; 64]> {
        let key = self
            .key
            .get_or_init(|| {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).ok().map(|()| key)
            })
            .as_ref()?;
        Some(
            Blake2b512::new()
                .chain_update(key)
                .chain_update(clear)
                .finalize()
                .into(),
        )
    }

    /// Whether `clear` is the password. Slow (an argon2 run) unless it is
    /// the credential that passed last: call it off the executor.
    pub fn check(&self, clear: &[u8]) -> bool {
        let Some(p) = self.current() else {
            return false;
        };
        let fp = self.fingerprint(clear);
        if let Some(fp) = &fp
            && lock(&self.verified).is_some_and(|v| bool::from(v.ct_eq(fp)))
        {
            return true;
        }
        let ok = p.verify(clear);
        if ok && fp.is_some() {
            *lock(&self.verified) = fp;
        }
        ok
    }

    /// Sets a new password (the current one must be given): written to the
    /// file, then in force; every session ends.
    pub fn change(&self, current: &[u8], new: &str) -> Result<(), ChangeError> {
        let file = self.file.clone().ok_or(ChangeError::NoFile)?;
        if self.required() && !self.check(current) {
            return Err(ChangeError::Wrong);
        }
        let p = Password::hash(new, false).map_err(ChangeError::Password)?;
        p.save(&file).map_err(ChangeError::Password)?;
        *self
            .password
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(p);
        *lock(&self.verified) = None;
        self.sessions.clear();
        log::info!("the password was changed; every session ended");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_caches_and_change_ends_sessions() {
        let dir = std::env::temp_dir().join(format!("blackbox-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        let none = Auth::new(Some(&file), &[]).unwrap();
        assert!(!none.required());
        assert!(!none.check(b"anything"));
        Password::hash("first password", true)
            .unwrap()
            .save(&file)
            .unwrap();
        let auth = Auth::new(Some(&file), &[]).unwrap();
        assert!(auth.required() && auth.first_boot());
        assert!(auth.check(b"first password"));
        assert!(auth.check(b"first password"), "the cached path");
        assert!(!auth.check(b"first passwore"));
        let s = auth.sessions.create().unwrap();
        assert!(matches!(
            auth.change(b"wrong", "second password"),
            Err(ChangeError::Wrong)
        ));
        assert!(matches!(
            auth.change(b"first password", "short"),
            Err(ChangeError::Password(_))
        ));
        auth.change(b"first password", "second password").unwrap();
        assert!(!auth.first_boot());
        assert!(!auth.check(b"first password"), "the cache went with it");
        assert!(auth.check(b"second password"));
        assert!(!auth.sessions.valid(&s));
        let again = Auth::new(Some(&file), &[]).unwrap();
        assert!(again.check(b"second password"), "written to the file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
