//! The data directory belongs to one blackbox at a time. `blackbox run`
//! holds an exclusive `flock` on the directory itself for as long as it
//! runs, and `blackbox recover` takes the same lock before touching a file:
//! a recovery run by hand while the service records would otherwise
//! "repair" the segment being written under the recorder's feet, and a
//! second service on the same card would interleave sequence numbers.
//! The kernel drops the lock when the process ends, however it ends, so a
//! crash or a power cut never leaves a stale lock behind; and locking the
//! directory (not a file in it) leaves nothing on the card.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The held lock; released when dropped.
pub struct DataLock {
    _lock: Flock<File>,
}

impl fmt::Debug for DataLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataLock")
    }
}

/// Why the lock could not be had.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Busy(PathBuf),
    Io(PathBuf, io::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy(p) => write!(
                f,
                "{} is in use by another blackbox (stop the service first: systemctl stop blackbox)",
                p.display()
            ),
            Self::Io(p, e) => write!(f, "cannot lock {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LockError {}

impl From<LockError> for io::Error {
    fn from(e: LockError) -> Self {
        let kind = match &e {
            LockError::Busy(_) => io::ErrorKind::WouldBlock,
            LockError::Io(_, e) => e.kind(),
        };
        io::Error::new(kind, e.to_string())
    }
}

/// Takes the lock on the directory `root`, at once or not at all.
pub fn take(root: &Path) -> Result<DataLock, LockError> {
    take_within(root, HOLDER_GRACE)
}

/// How long a lock held by someone else is waited for. A blackbox that
/// died (a crash, `kill -9`) while it was starting a program (chronyc,
/// rpicam-vid) leaves a child between fork and exec that still holds the
/// lock's descriptor, for milliseconds or, on a card busy with writes,
/// seconds; the instance systemd starts next must not be refused for it.
/// A blackbox that is really running holds it for good and is refused
/// after this.
pub const HOLDER_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// [`take`], waiting at most `grace` for a holder to go.
pub fn take_within(root: &Path, grace: std::time::Duration) -> Result<DataLock, LockError> {
    let deadline = std::time::Instant::now() + grace;
    let mut said = false;
    loop {
        let dir = File::open(root).map_err(|e| LockError::Io(root.to_path_buf(), e))?;
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(DataLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                if !said {
                    log::info!(
                        "{} is locked; waiting up to {} s for its holder to go",
                        root.display(),
                        grace.as_secs()
                    );
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(LockError::Busy(root.to_path_buf()));
            }
            Err((_, e)) => return Err(LockError::Io(root.to_path_buf(), io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("blackbox-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = take(&dir).unwrap();
        assert!(matches!(
            take_within(&dir, std::time::Duration::from_millis(300)),
            Err(LockError::Busy(_))
        ));
        drop(held);
        let again = take(&dir).unwrap();
        drop(again);
        assert!(
            std::fs::read_dir(&dir).unwrap().next().is_none(),
            "nothing left on the card"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
