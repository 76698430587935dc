//! Who may use blackbox, and from where. With a password set (a file of an
//! argon2id hash, [`password`]), every route but the login page and
//! `/healthz` needs either a session cookie from the login page
//! ([`sessions`]) or HTTP Basic with the same password (players, curl,
//! Prometheus). Failed attempts are limited per address and for everyone
//! together, and counted before the password is hashed ([`limiter`]).
//! Independently of the password, requests must name one of the device's own
//! hosts, and those that change something must come from the page's own
//! origin ([`origin`]). Without a password blackbox serves loopback only.
//!
//! # What a guess costs
//! An argon2id check takes about 19 MiB and tens of milliseconds. At most
//! [`CHECKS_AT_ONCE`] run at a time, each on a blocking thread with its
//! permit; at most [`CHECKS_WAITING`] more wait, and past them an attempt is
//! turned away at once ([`TooManyChecks`], a 429) without being counted. So a storm
//! of guesses costs a bounded amount of memory and at most two cores' worth
//! of work for as long as it lasts, and nothing of the recorder's.
//!
//! # No valid password beyond loopback
//! Asked to listen beyond loopback with no password file, or with one that
//! cannot be read, blackbox still records: the web side is *closed*
//! ([`Auth::closed`]): every request but `/healthz` gets a page that says
//! why, until a valid password file appears (it is looked for again every
//! few seconds, so `blackbox passwd FILE` over SSH opens it without a
//! restart).
//!
//! This module knows nothing of HTTP libraries: `crate::http` asks it about
//! header values and answers accordingly.

pub mod limiter;
pub mod origin;
pub mod password;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use blake2::{Blake2b512, Digest};
use smol::lock::Semaphore;
use subtle::ConstantTimeEq;

use crate::sync::lock;
use limiter::Limiter;
use origin::Hosts;
use password::{Password, PasswordError};
use sessions::Sessions;

/// How long a login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Password checks (argon2 runs) at once.
pub const CHECKS_AT_ONCE: usize = 2;
/// Attempts that may wait for a check; past them one is turned away at once.
pub const CHECKS_WAITING: usize = 8;
/// While the web side is closed, the password file is read again at most
/// this often.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Too many password checks are running or waiting: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyChecks;

/// Why the web side is closed beyond loopback, and when the password file
/// was last looked at.
struct Closed {
    why: String,
    checked: Instant,
}

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
    /// Bumped (under `verified`'s lock) by every password change, so a
    /// check that began before a change cannot cache the old password.
    generation: AtomicU64,
    checks: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Set while blackbox listens beyond loopback without a valid password.
    closed: Mutex<Option<Closed>>,
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

/// Counts an attempt waiting for a check while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn no_password_reason(file: Option<&Path>) -> String {
    match file {
        Some(f) => format!(
            "no password is set: the password file {} does not exist (write it with `blackbox passwd {}`)",
            f.display(),
            f.display()
        ),
        None => "no password file is configured (http.password_file, --password-file)".into(),
    }
}

impl Auth {
    /// Loads the password from `file` (none, or a missing file: no
    /// password). With `beyond_loopback`, a missing or unusable file is no
    /// error: the web side starts closed ([`Self::closed`]); on loopback
    /// an unusable file is.
    pub fn new(
        file: Option<&Path>,
        allowed_hosts: &[String],
        beyond_loopback: bool,
    ) -> Result<Self, PasswordError> {
        let (password, closed) = match file.map(Password::load).transpose() {
            Ok(p) => {
                let p = p.flatten();
                let closed = (beyond_loopback && p.is_none()).then(|| no_password_reason(file));
                (p, closed)
            }
            Err(e) if beyond_loopback => (None, Some(e.to_string())),
            Err(e) => return Err(e),
        };
        Ok(Self {
            file: file.map(Path::to_path_buf),
            password: RwLock::new(password),
            sessions: Sessions::new(SESSION_LIFETIME),
            limiter: Limiter::default(),
            hosts: Hosts::new(allowed_hosts),
            key: OnceLock::new(),
            verified: Mutex::new(None),
            generation: AtomicU64::new(0),
            checks: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
            waiting: AtomicUsize::new(0),
            closed: Mutex::new(closed.map(|why| Closed {
                why,
                checked: Instant::now(),
            })),
        })
    }

    /// Why the web side is closed beyond loopback (no valid password), or
    /// `None` when it is open. While closed, the password file is read
    /// again every few seconds; a valid one opens it.
    pub fn closed(&self) -> Option<String> {
        let mut closed = lock(&self.closed);
        let c = closed.as_mut()?;
        if c.checked.elapsed() < RELOAD_EVERY {
            return Some(c.why.clone());
        }
        c.checked = Instant::now();
        match self.file.as_deref().map(Password::load).transpose() {
            Ok(Some(Some(p))) => {
                *self
                    .password
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(p);
                *closed = None;
                log::info!(
                    "a valid password file appeared: the web side is open (with the password)"
                );
                None
            }
            Ok(_) => {
                c.why = no_password_reason(self.file.as_deref());
                Some(c.why.clone())
            }
            Err(e) => {
                c.why = e.to_string();
                Some(c.why.clone())
            }
        }
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
    /// the credential that passed last: call it through [`Self::slow`].
    pub fn check(&self, clear: &[u8]) -> bool {
        let generation = self.generation.load(Ordering::SeqCst);
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
            let mut verified = lock(&self.verified);
            if self.generation.load(Ordering::SeqCst) == generation {
                *verified = fp;
            }
        }
        ok
    }

    /// Runs `f` (which checks a password) on a blocking thread, at most
    /// [`CHECKS_AT_ONCE`] at a time; [`TooManyChecks`] at once if
    /// [`CHECKS_WAITING`] attempts are already waiting. The permit goes
    /// with the work, so a client that hangs up cannot start another check
    /// before its own has finished.
    pub async fn slow<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Auth) -> T + Send + 'static,
    ) -> Result<T, TooManyChecks> {
        let permit = match self.checks.try_acquire_arc() {
            Some(p) => p,
            None => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= CHECKS_WAITING {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(TooManyChecks);
                }
                let _waiting = Waiting(&self.waiting);
                self.checks.acquire_arc().await
            }
        };
        let a = self.clone();
        Ok(smol::unblock(move || {
            let _permit = permit;
            f(&a)
        })
        .await)
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
        {
            let mut verified = lock(&self.verified);
            *self
                .password
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(p);
            self.generation.fetch_add(1, Ordering::SeqCst);
            *verified = None;
        }
        self.sessions.clear();
        log::info!("the password was changed; every session ended");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_two_at_a_time_and_a_full_queue_turns_away() {
        let auth = Arc::new(Auth::new(None, &[], false).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let results: Vec<Result<(), TooManyChecks>> = smol::block_on(async {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let (auth, running, most) = (auth.clone(), running.clone(), most.clone());
                    smol::spawn(async move {
                        auth.slow(move |_| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        assert!(most.load(Ordering::SeqCst) <= CHECKS_AT_ONCE);
        let busy = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(busy, 20 - CHECKS_AT_ONCE - CHECKS_WAITING);
        assert_eq!(auth.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn closed_beyond_loopback_until_a_valid_file_appears() {
        let dir = std::env::temp_dir().join(format!("blackbox-closed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "garbage\n").unwrap();
        assert!(
            Auth::new(Some(&file), &[], false).is_err(),
            "on loopback: an error"
        );
        let auth = Auth::new(Some(&file), &[], true).unwrap();
        assert!(auth.closed().unwrap().contains("argon2id"));
        Password::hash("a good password", false)
            .unwrap()
            .save(&file)
            .unwrap();
        lock(&auth.closed).as_mut().unwrap().checked -= RELOAD_EVERY;
        assert_eq!(auth.closed(), None);
        assert!(auth.required() && auth.check(b"a good password"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_caches_and_change_ends_sessions() {
        let dir = std::env::temp_dir().join(format!("blackbox-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        let none = Auth::new(Some(&file), &[], false).unwrap();
        assert!(!none.required());
        assert!(!none.check(b"anything"));
        Password::hash("first password", true)
            .unwrap()
            .save(&file)
            .unwrap();
        let auth = Auth::new(Some(&file), &[], false).unwrap();
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
        let again = Auth::new(Some(&file), &[], false).unwrap();
        assert!(again.check(b"second password"), "written to the file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
