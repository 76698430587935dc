//! The `bootcfg` partition (FAT, `autoboot.txt` only) and the one careful
//! way `autoboot.txt` is replaced.
//!
//! The partition is not mounted while the system runs: it is mounted for a
//! read or a write and unmounted straight after, so a power cut at any other
//! time cannot touch it. A replacement goes:
//!
//! 1. a stale `autoboot.tmp` from an earlier cut is dealt with (below);
//! 2. the new text is written to `autoboot.tmp` and fsynced;
//! 3. `autoboot.tmp` is renamed over `autoboot.txt`;
//! 4. the directory is fsynced, the partition unmounted (which writes the
//!    rest of the FAT) and the file read back.
//!
//! FAT has no atomic rename. What a cut leaves, step by step:
//! - during 1 or 2, or before 3 reached the card: `autoboot.txt` is the old
//!   file, untouched (its directory entry and cluster are not written); at
//!   most a partial `autoboot.tmp` and lost clusters, which the next
//!   replacement removes. The old slot boots.
//! - during 3: with the partition mounted `sync`, Linux's vfat rename
//!   first writes the old name's directory entry pointing at the new file's
//!   cluster, then deletes the temporary name's entry, then frees the old
//!   cluster: separate writes, in that order. Cut between them, both names point at
//!   the new cluster (a cross-link) and `autoboot.txt` reads as the new
//!   file. Cut before the first, it is the old file. Either is a whole file
//!   the firmware boots from; no cut yields a half-written `autoboot.txt`,
//!   because the new text was on the card (2) before any entry pointed at it.
//! - during 4: the new file is in place; only the freeing of the old
//!   cluster may be lost (a lost cluster, harmless).
//!
//! The cross-link needs care: deleting the stale `autoboot.tmp` through the
//! file system would free the cluster `autoboot.txt` now uses, and the next
//! file written could take it. So step 1 asks the file system where each
//! file's first block lives (`FIBMAP`); if they share it, the partition is
//! unmounted and `fsck.fat -a` repairs the cross-link first (it keeps the
//! entry found first in the directory, which is `autoboot.txt`: the
//! temporary name always sits after it) and the replacement then writes a
//! complete new file anyway; a file system that will not say where a file
//! lives is treated the same way. `hil-tests/ota` cuts the power at each
//! step. Every read and replacement holds a lock (`flock` on a file beside
//! the mount point), so two processes never mount, read or write the
//! partition at once.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use super::autoboot::{Autoboot, AutobootError};

/// The file the firmware reads.
pub const FILE: &str = "autoboot.txt";
/// The temporary name used while replacing it.
pub const TMP: &str = "autoboot.tmp";

/// Where `autoboot.txt` lives.
#[derive(Debug, Clone)]
pub struct Bootcfg {
    /// The FAT partition, mounted only while it is used; `None` when `dir`
    /// is already a mounted (or plain) directory.
    pub device: Option<PathBuf>,
    /// The mount point (or the directory).
    pub dir: PathBuf,
}

/// Why `autoboot.txt` could not be read or replaced.
#[derive(Debug)]
pub enum BootcfgError {
    /// A file-system call failed.
    Io(&'static str, PathBuf, std::io::Error),
    /// mount, umount or fsck.fat failed.
    Tool(String),
    /// The file is not a usable `autoboot.txt`.
    Invalid(AutobootError),
    /// Read back after the write, it is not what was written.
    Mismatch,
    /// `autoboot.tmp` and `autoboot.txt` share their cluster and no
    /// partition was given to repair.
    CrossLinked,
}

impl fmt::Display for BootcfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(what, p, e) => write!(f, "cannot {what} {}: {e}", p.display()),
            Self::Tool(e) => f.write_str(e),
            Self::Invalid(e) => write!(f, "{FILE}: {e}"),
            Self::Mismatch => write!(f, "{FILE} read back differs from what was written"),
            Self::CrossLinked => write!(f, "{TMP} and {FILE} share a cluster"),
        }
    }
}

impl std::error::Error for BootcfgError {}

fn io(what: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> BootcfgError + use<> {
    let p = p.to_path_buf();
    move |e| BootcfgError::Io(what, p, e)
}

fn run(cmd: &mut Command) -> Result<(), BootcfgError> {
    let out = cmd
        .output()
        .map_err(|e| BootcfgError::Tool(format!("{cmd:?}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(BootcfgError::Tool(format!(
        "{cmd:?}: {}; {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// The partition, mounted for as long as this lives.
struct Mounted<'a> {
    cfg: &'a Bootcfg,
    mounted: bool,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.cfg.dir).status();
        }
    }
}

impl Mounted<'_> {
    fn unmount(mut self) -> Result<(), BootcfgError> {
        self.mounted = false;
        if self.cfg.device.is_some() {
            run(Command::new("umount").arg(&self.cfg.dir))?;
        }
        Ok(())
    }
}

/// The physical block of a file's first block: `Ok(None)` for an empty
/// file (it has no cluster), `Err` when the file system will not say.
fn first_block(path: &Path) -> Result<Option<i32>, ()> {
    use nix::libc;
    const FIBMAP: libc::c_ulong = 1;
    let f = File::open(path).map_err(|_| ())?;
    if f.metadata().map_err(|_| ())?.len() == 0 {
        return Ok(None);
    }
    let mut block: libc::c_int = 0;
    // SAFETY: FIBMAP reads and writes one int through the pointer, which
    // points at a live local; the descriptor is open for the whole call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FIBMAP as _, &mut block) };
    if r == 0 && block > 0 {
        Ok(Some(block))
    } else {
        Err(())
    }
}

/// Whether the two files may start on the same block (a FAT cross-link).
/// A block map the file system will not give is taken as shared: the
/// repair that follows is harmless when nothing was wrong, while deleting
/// a temporary name that shares `autoboot.txt`'s cluster frees the boot
/// configuration's own data.
fn shared(a: &Path, b: &Path) -> bool {
    match (first_block(a), first_block(b)) {
        (Ok(Some(x)), Ok(Some(y))) => x == y,
        (Ok(None), _) | (_, Ok(None)) => false,
        _ => true,
    }
}

fn fsync_dir(dir: &Path) -> Result<(), BootcfgError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

impl Bootcfg {
    /// The appliance's: the partition labelled `bootcfg`, mounted on demand.
    pub fn appliance() -> Self {
        Self {
            device: Some(PathBuf::from("/dev/disk/by-partlabel/bootcfg")),
            dir: PathBuf::from("/run/blackbox/bootcfg"),
        }
    }

    /// Serialises every use of the partition between processes (the
    /// health gate, RAUC's backend, `blackbox ota status`): one mounting
    /// while another unmounts, or reading while another writes, would see
    /// half a change. The lock file sits beside the mount point, outside
    /// the partition; it is released when the returned lock is dropped.
    fn serialise(&self) -> Result<Flock<File>, BootcfgError> {
        let path = self.dir.with_extension("lock");
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(io("open", &path))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| BootcfgError::Io("lock", path, std::io::Error::from(e)))
    }

    fn mount(&self, writable: bool) -> Result<Mounted<'_>, BootcfgError> {
        let Some(dev) = &self.device else {
            return Ok(Mounted {
                cfg: self,
                mounted: false,
            });
        };
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        // `sync` (which implies dirsync): Linux's vfat then writes the
        // renamed entry before it removes the temporary one and before it
        // frees the old file's cluster. Without it the write-back order is
        // free, and hil-tests/ota/fatcut.py caught a cut that left
        // autoboot.txt pointing at a cluster already marked free.
        let opts = if writable {
            "rw,sync,noatime,nodev,nosuid,noexec"
        } else {
            "ro,nodev,nosuid,noexec"
        };
        run(Command::new("mount")
            .args(["-t", "vfat", "-o", opts])
            .arg(dev)
            .arg(&self.dir))?;
        Ok(Mounted {
            cfg: self,
            mounted: true,
        })
    }

    /// The current `autoboot.txt`.
    pub fn read(&self) -> Result<Autoboot, BootcfgError> {
        let _serial = self.serialise()?;
        self.read_serialised()
    }

    fn read_serialised(&self) -> Result<Autoboot, BootcfgError> {
        let m = self.mount(false)?;
        let path = self.dir.join(FILE);
        let bytes = fs::read(&path).map_err(io("read", &path));
        m.unmount()?;
        Autoboot::parse(&bytes?).map_err(BootcfgError::Invalid)
    }

    /// Replaces `autoboot.txt` with `new`, in the order described at the
    /// top of this file.
    pub fn replace(&self, new: &Autoboot) -> Result<(), BootcfgError> {
        let _serial = self.serialise()?;
        let text = new.render();
        let mut m = self.mount(true)?;
        let (file, tmp) = (self.dir.join(FILE), self.dir.join(TMP));
        // 1. A stale temporary file from a cut.
        if tmp.exists() {
            // Only the FAT partition can cross-link; a plain directory (the
            // tests') cannot.
            if self.device.is_some() && shared(&tmp, &file) {
                let Some(dev) = self.device.clone() else {
                    return Err(BootcfgError::CrossLinked);
                };
                log::warn!("{TMP} and {FILE} share a cluster (a cut during a rename); repairing");
                m.unmount()?;
                // fsck.fat exits 1 when it corrected something.
                let status = Command::new("fsck.fat")
                    .arg("-a")
                    .arg(&dev)
                    .status()
                    .map_err(|e| BootcfgError::Tool(format!("fsck.fat: {e}")))?;
                if !matches!(status.code(), Some(0 | 1)) {
                    return Err(BootcfgError::Tool(format!("fsck.fat -a: {status}")));
                }
                m = self.mount(true)?;
                if shared(&tmp, &file) {
                    return Err(BootcfgError::CrossLinked);
                }
            }
            if tmp.exists() {
                fs::remove_file(&tmp).map_err(io("remove", &tmp))?;
            }
        }
        // 2. The new text, on the card before any name points at it.
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        // 3. The rename: the old file or the new, never a mix.
        fs::rename(&tmp, &file).map_err(io("rename", &tmp))?;
        // 4. The directory, then the rest of the FAT with the unmount.
        fsync_dir(&self.dir)?;
        m.unmount()?;
        if self.read_serialised()? != *new {
            return Err(BootcfgError::Mismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Slot;
    use super::*;

    fn plain(name: &str) -> Bootcfg {
        Bootcfg {
            device: None,
            dir: super::super::scratch(name),
        }
    }

    #[test]
    fn two_writers_and_a_reader_take_turns() {
        let cfg = plain("bootcfg-turns");
        fs::write(cfg.dir.join(FILE), Autoboot::with_default(Slot::A).render()).unwrap();
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let cfg = cfg.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        if i == 2 {
                            let a = cfg
                                .read()
                                .expect("a whole autoboot.txt, never half a change");
                            assert!(
                                a == Autoboot::with_default(Slot::A)
                                    || a == Autoboot::with_default(Slot::B)
                            );
                        } else {
                            let slot = if i == 0 { Slot::A } else { Slot::B };
                            cfg.replace(&Autoboot::with_default(slot)).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!cfg.dir.join(TMP).exists());
    }

    #[test]
    fn an_empty_file_has_no_cluster_to_share() {
        let cfg = plain("bootcfg-empty");
        fs::write(cfg.dir.join(TMP), b"").unwrap();
        fs::write(cfg.dir.join(FILE), b"[all]\n").unwrap();
        assert_eq!(first_block(&cfg.dir.join(TMP)), Ok(None));
        assert!(!shared(&cfg.dir.join(TMP), &cfg.dir.join(FILE)));
    }

    #[test]
    fn replaces_and_reads_back() {
        let cfg = plain("bootcfg-replace");
        fs::write(cfg.dir.join(FILE), Autoboot::with_default(Slot::A).render()).unwrap();
        assert_eq!(cfg.read().unwrap(), Autoboot::with_default(Slot::A));
        cfg.replace(&Autoboot::with_default(Slot::B)).unwrap();
        assert_eq!(cfg.read().unwrap(), Autoboot::with_default(Slot::B));
        assert!(!cfg.dir.join(TMP).exists());
    }

    #[test]
    fn a_stale_temporary_file_is_replaced() {
        let cfg = plain("bootcfg-stale");
        fs::write(cfg.dir.join(FILE), Autoboot::with_default(Slot::A).render()).unwrap();
        fs::write(cfg.dir.join(TMP), "[all]\ntryboot_a_b=1\nboot_par").unwrap();
        cfg.replace(&Autoboot::with_default(Slot::B)).unwrap();
        assert_eq!(cfg.read().unwrap(), Autoboot::with_default(Slot::B));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_guess() {
        let cfg = plain("bootcfg-damaged");
        fs::write(cfg.dir.join(FILE), "[all]\nboot_partition=2\n").unwrap();
        assert!(matches!(cfg.read(), Err(BootcfgError::Invalid(_))));
        // ...and a replacement repairs it.
        cfg.replace(&Autoboot::with_default(Slot::A)).unwrap();
        assert_eq!(cfg.read().unwrap(), Autoboot::with_default(Slot::A));
    }
}
