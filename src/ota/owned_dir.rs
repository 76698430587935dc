//! Files in a directory that someone less trusted owns. The root update
//! helper works in the update directory on `/data`, which belongs to the
//! unprivileged service: whatever the service leaves there (a symbolic link
//! named `.status.tmp` pointing at `/etc/shadow`, a FIFO named like the
//! bundle) must not make root write, truncate or block on anything else.
//! So the directory is opened once without following a link, and every
//! name in it is used relative to that descriptor: new files are created
//! with `O_EXCL|O_NOFOLLOW` (never opened if they exist), files are read
//! only if they are regular files reached without a link, and renames and
//! removals act on the names themselves, which never follows a link.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

/// A directory opened without following a link.
pub struct OwnedDir {
    path: PathBuf,
    fd: OwnedFd,
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

impl OwnedDir {
    /// Opens `path`, which must be a directory and not a link.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Self {
            path: path.to_path_buf(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes `name` (a link is removed, not followed); absent is fine.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    /// Writes `bytes` to `name` atomically: a new temporary file (never an
    /// existing one), synced, then renamed over `name`.
    pub fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let tmp = format!(".{name}.tmp");
        self.remove(&tmp)?;
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(errno)?;
        let mut f = File::from(fd);
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(errno)
    }

    /// Opens `name` for reading if it is a regular file reached without a
    /// link (a FIFO does not block the open).
    pub fn open_regular(&self, name: &str) -> io::Result<File> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.path.join(name).display()),
            ));
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_fifos_are_never_followed() {
        let dir = super::super::scratch("owned-dir");
        let target = dir.join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let inner = dir.join("update");
        std::fs::create_dir_all(&inner).unwrap();
        std::os::unix::fs::symlink(&target, inner.join(".status.tmp")).unwrap();
        std::os::unix::fs::symlink(&target, inner.join("bundle")).unwrap();
        nix::unistd::mkfifo(&inner.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let d = OwnedDir::open(&inner).unwrap();
        d.replace("status", b"{}", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert_eq!(std::fs::read_to_string(inner.join("status")).unwrap(), "{}");
        assert!(d.open_regular("bundle").is_err(), "a link");
        assert!(d.open_regular("fifo").is_err(), "a FIFO, without blocking");
        assert!(d.open_regular("status").is_ok());
        d.remove("bundle").unwrap();
        assert!(target.exists(), "the link went, not its target");
        // The directory itself swapped for a link is refused.
        let swapped = dir.join("swapped");
        std::os::unix::fs::symlink(&dir, &swapped).unwrap();
        assert!(OwnedDir::open(&swapped).is_err());
    }
}
