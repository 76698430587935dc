//! RAUC's `bootloader=custom` backend for the Pi 5 firmware's tryboot.
//!
//! RAUC (1.8) calls the handler with `get-primary`, `set-primary SLOT`,
//! `get-state SLOT` and `set-state SLOT good|bad` (and, from 1.11,
//! `get-current`); the handler is `blackbox ota backend …`. The mapping:
//!
//! - **primary** is the slot the next boot starts: the slot a tryboot is
//!   armed for, else `autoboot.txt`'s default.
//! - **set-primary X** after an install: if X is the default already, any
//!   armed tryboot is disarmed; else `[tryboot]` is pointed at X (rewritten
//!   only if it does not already) and a one-shot tryboot is armed by writing
//!   `0 tryboot` to systemd's reboot parameter, which the next
//!   `systemctl reboot` hands to the kernel and the kernel to the firmware.
//!   Nothing about the default changes: any crash, hang or power cut before
//!   the commit boots the old slot.
//! - **set-state X good** (`rauc status mark-good`): if X is running as a
//!   tryboot, this is the commit: `autoboot.txt` is rewritten with X as the
//!   default (see [`super::bootcfg`] for how).
//! - **set-state X bad**: X is remembered as bad and never armed; if X is
//!   the committed default, the default goes back to the other slot.
//!
//! Bad marks live on the data partition (they must survive a reboot); the
//! armed flag lives in `/run`, like the firmware's own one-shot flag, so a
//! reboot forgets it.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::Slot;
use super::autoboot::Autoboot;
use super::bootcfg::{Bootcfg, BootcfgError};
use super::bootinfo::{self, BootInfoError};

/// What the backend works on.
#[derive(Debug, Clone)]
pub struct Backend {
    pub bootcfg: Bootcfg,
    pub boot: bootinfo::Sources,
    /// Survives reboots: the bad marks (`/data/ota`).
    pub state_dir: PathBuf,
    /// Forgotten at reboot: the armed slot (`/run/blackbox`).
    pub run_dir: PathBuf,
    /// systemd's reboot parameter (`/run/systemd/reboot-param`).
    pub reboot_param: PathBuf,
}

/// Why a backend call failed.
#[derive(Debug)]
pub enum BackendError {
    Bootcfg(BootcfgError),
    Boot(BootInfoError),
    Io(&'static str, PathBuf, std::io::Error),
    /// A slot name RAUC should not have sent.
    UnknownSlot(String),
    /// A usage error.
    Usage(String),
    /// `autoboot.txt` names a partition that is neither slot.
    Foreign(u32),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bootcfg(e) => write!(f, "{e}"),
            Self::Boot(e) => write!(f, "{e}"),
            Self::Io(what, p, e) => write!(f, "cannot {what} {}: {e}", p.display()),
            Self::UnknownSlot(s) => write!(f, "no slot named {s:?} (A or B)"),
            Self::Usage(s) => f.write_str(s),
            Self::Foreign(n) => write!(f, "autoboot.txt boots partition {n}, neither slot"),
        }
    }
}

impl std::error::Error for BackendError {}

impl From<BootcfgError> for BackendError {
    fn from(e: BootcfgError) -> Self {
        Self::Bootcfg(e)
    }
}

impl From<BootInfoError> for BackendError {
    fn from(e: BootInfoError) -> Self {
        Self::Boot(e)
    }
}

fn slot(name: &str) -> Result<Slot, BackendError> {
    Slot::from_name(name).ok_or_else(|| BackendError::UnknownSlot(name.to_string()))
}

/// Writes `path` so that it is either the old file or the new (ext4 or
/// tmpfs: rename is atomic there).
fn write_atomic(path: &Path, text: &str) -> Result<(), BackendError> {
    let err = |what| move |e| BackendError::Io(what, path.to_path_buf(), e);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err("create the directory of"))?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(err("write"))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(err("fsync"))?;
    fs::rename(&tmp, path).map_err(err("rename"))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("fsync the directory of"))
}

fn remove(path: &Path) -> Result<(), BackendError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(BackendError::Io("remove", path.to_path_buf(), e))
        }
        _ => Ok(()),
    }
}

impl Backend {
    /// The appliance's paths.
    pub fn appliance() -> Self {
        Self {
            bootcfg: Bootcfg::appliance(),
            boot: bootinfo::Sources::default(),
            state_dir: PathBuf::from("/data/ota"),
            run_dir: PathBuf::from("/run/blackbox"),
            reboot_param: PathBuf::from("/run/systemd/reboot-param"),
        }
    }

    fn bad_mark(&self, s: Slot) -> PathBuf {
        self.state_dir.join(format!("bad-{s}"))
    }

    fn armed_file(&self) -> PathBuf {
        self.run_dir.join("tryboot-armed")
    }

    /// The slot a tryboot is armed for, if any.
    pub fn armed(&self) -> Option<Slot> {
        let armed = fs::read_to_string(self.armed_file()).ok()?;
        let param = fs::read_to_string(&self.reboot_param).ok()?;
        param
            .contains("tryboot")
            .then(|| Slot::from_name(&armed))
            .flatten()
    }

    fn disarm(&self) -> Result<(), BackendError> {
        if self.armed().is_some() {
            remove(&self.reboot_param)?;
        }
        remove(&self.armed_file())
    }

    fn autoboot(&self) -> Result<Autoboot, BackendError> {
        Ok(self.bootcfg.read()?)
    }

    fn default_slot(&self, ab: &Autoboot) -> Result<Slot, BackendError> {
        ab.default_slot().ok_or(BackendError::Foreign(ab.default))
    }

    /// The slot the next boot starts.
    pub fn get_primary(&self) -> Result<Slot, BackendError> {
        if let Some(s) = self.armed() {
            return Ok(s);
        }
        self.default_slot(&self.autoboot()?)
    }

    /// Whether the running slot is the one autoboot.txt boots by default.
    pub fn running_is_default(&self) -> Result<bool, BackendError> {
        Ok(self.default_slot(&self.autoboot()?)? == self.get_current()?)
    }

    /// Makes `s` the slot the next boot starts: a one-shot tryboot unless it
    /// is the default already.
    pub fn set_primary(&self, s: Slot) -> Result<(), BackendError> {
        let ab = self.autoboot()?;
        if self.default_slot(&ab)? == s {
            return self.disarm();
        }
        if ab.tryboot != s.partition() {
            self.bootcfg.replace(&Autoboot {
                default: ab.default,
                tryboot: s.partition(),
            })?;
        }
        // A freshly written slot is good until its health gate says not.
        remove(&self.bad_mark(s))?;
        write_atomic(&self.armed_file(), s.name())?;
        write_atomic(&self.reboot_param, "0 tryboot")?;
        log::info!("slot {s} armed for one tryboot");
        Ok(())
    }

    /// `good` or `bad`.
    pub fn get_state(&self, s: Slot) -> &'static str {
        if self.bad_mark(s).exists() {
            "bad"
        } else {
            "good"
        }
    }

    /// Marks `s` good (committing it if it runs as a tryboot) or bad.
    pub fn set_state(&self, s: Slot, good: bool) -> Result<(), BackendError> {
        if good {
            remove(&self.bad_mark(s))?;
            let boot = bootinfo::read(&self.boot)?;
            let ab = self.autoboot()?;
            if boot.slot() == Some(s) && ab.default != s.partition() {
                self.bootcfg.replace(&Autoboot::with_default(s))?;
                log::info!("slot {s} committed: the default boot from now on");
            }
            return Ok(());
        }
        write_atomic(&self.bad_mark(s), "bad\n")?;
        if self.armed() == Some(s) {
            self.disarm()?;
        }
        let ab = self.autoboot()?;
        if ab.default == s.partition() && self.get_state(s.other()) == "good" {
            self.bootcfg.replace(&Autoboot::with_default(s.other()))?;
            log::warn!(
                "slot {s} marked bad: slot {} is the default again",
                s.other()
            );
        }
        Ok(())
    }

    /// The slot running now.
    pub fn get_current(&self) -> Result<Slot, BackendError> {
        let boot = bootinfo::read(&self.boot)?;
        boot.slot().ok_or(BackendError::Foreign(boot.partition))
    }

    /// Runs one RAUC call; what RAUC reads goes to stdout.
    pub fn call(&self, args: &[String]) -> Result<String, BackendError> {
        let arg = |i: usize| {
            args.get(i)
                .map(String::as_str)
                .ok_or_else(|| BackendError::Usage(format!("{}: a slot is needed", args[0])))
        };
        match args.first().map(String::as_str) {
            Some("get-primary") => Ok(format!("{}\n", self.get_primary()?)),
            Some("set-primary") => self.set_primary(slot(arg(1)?)?).map(|()| String::new()),
            Some("get-state") => Ok(format!("{}\n", self.get_state(slot(arg(1)?)?))),
            Some("set-state") => {
                let s = slot(arg(1)?)?;
                match args.get(2).map(String::as_str) {
                    Some("good") => self.set_state(s, true),
                    Some("bad") => self.set_state(s, false),
                    other => Err(BackendError::Usage(format!(
                        "set-state: good or bad, not {other:?}"
                    ))),
                }
                .map(|()| String::new())
            }
            Some("get-current") => Ok(format!("{}\n", self.get_current()?)),
            other => Err(BackendError::Usage(format!(
                "unknown call {other:?}: get-primary, set-primary, get-state, set-state, get-current"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend on plain directories, booted from `partition`.
    fn backend(name: &str, partition: u32, tryboot: bool) -> Backend {
        let root = super::super::scratch(name);
        let b = Backend {
            bootcfg: Bootcfg {
                device: None,
                dir: root.join("bootcfg"),
            },
            boot: bootinfo::Sources {
                device_tree: root.join("dt"),
                cmdline: root.join("cmdline"),
            },
            state_dir: root.join("data/ota"),
            run_dir: root.join("run/blackbox"),
            reboot_param: root.join("run/systemd/reboot-param"),
        };
        fs::create_dir_all(&b.bootcfg.dir).unwrap();
        fs::write(
            b.bootcfg.dir.join("autoboot.txt"),
            Autoboot::with_default(Slot::A).render(),
        )
        .unwrap();
        b.reboot_into(partition, tryboot);
        b
    }

    impl Backend {
        /// What the firmware does at a reboot: the one-shot flag and /run go.
        fn reboot_into(&self, partition: u32, tryboot: bool) {
            let _ = fs::remove_dir_all(self.run_dir.parent().unwrap());
            fs::write(
                &self.boot.cmdline,
                format!(
                    "blackbox.boot_partition={partition} blackbox.tryboot={}",
                    tryboot as u8
                ),
            )
            .unwrap();
        }

        fn default(&self) -> Slot {
            self.bootcfg.read().unwrap().default_slot().unwrap()
        }

        fn sh(&self, args: &str) -> Result<String, BackendError> {
            let args: Vec<String> = args.split(' ').map(String::from).collect();
            self.call(&args)
        }
    }

    #[test]
    fn install_tryboot_commit() {
        let b = backend("backend-commit", 2, false);
        assert_eq!(b.sh("get-primary").unwrap(), "A\n");
        assert_eq!(b.sh("get-current").unwrap(), "A\n");
        b.sh("set-primary B").unwrap();
        assert_eq!(b.sh("get-primary").unwrap(), "B\n");
        assert_eq!(fs::read_to_string(&b.reboot_param).unwrap(), "0 tryboot");
        assert_eq!(b.default(), Slot::A, "the default stays until the commit");
        // The firmware boots B once; the health gate marks it good.
        b.reboot_into(3, true);
        assert_eq!(b.sh("get-primary").unwrap(), "A\n");
        b.sh("set-state B good").unwrap();
        assert_eq!(b.default(), Slot::B);
        assert_eq!(b.sh("get-primary").unwrap(), "B\n");
        assert_eq!(
            b.bootcfg.read().unwrap(),
            Autoboot::with_default(Slot::B),
            "a later tryboot would start A"
        );
    }

    #[test]
    fn an_unhealthy_tryboot_is_not_committed() {
        let b = backend("backend-bad", 2, false);
        b.sh("set-primary B").unwrap();
        b.reboot_into(3, true);
        b.sh("set-state B bad").unwrap();
        assert_eq!(b.sh("get-state B").unwrap(), "bad\n");
        assert_eq!(b.default(), Slot::A);
        b.reboot_into(2, false);
        assert_eq!(b.sh("get-primary").unwrap(), "A\n");
        // A new install to B clears the mark.
        b.sh("set-primary B").unwrap();
        assert_eq!(b.sh("get-state B").unwrap(), "good\n");
    }

    #[test]
    fn marking_the_armed_slot_bad_disarms_it() {
        let b = backend("backend-disarm", 2, false);
        b.sh("set-primary B").unwrap();
        b.sh("set-state B bad").unwrap();
        assert!(!b.reboot_param.exists());
        assert_eq!(b.sh("get-primary").unwrap(), "A\n");
    }

    #[test]
    fn set_primary_to_the_default_disarms() {
        let b = backend("backend-same", 2, false);
        b.sh("set-primary B").unwrap();
        b.sh("set-primary A").unwrap();
        assert!(!b.reboot_param.exists());
        assert_eq!(b.sh("get-primary").unwrap(), "A\n");
    }

    #[test]
    fn marking_the_committed_default_bad_falls_back() {
        let b = backend("backend-fallback", 2, false);
        b.sh("set-state A bad").unwrap();
        assert_eq!(b.default(), Slot::B);
        // ...unless the other slot is bad too: then nothing boots better.
        b.sh("set-state A good").unwrap();
        let b = backend("backend-both-bad", 2, false);
        b.sh("set-state B bad").unwrap();
        b.sh("set-state A bad").unwrap();
        assert_eq!(b.default(), Slot::A);
    }

    #[test]
    fn marking_good_on_a_committed_boot_changes_nothing() {
        let b = backend("backend-noop", 2, false);
        let before = fs::read(b.bootcfg.dir.join("autoboot.txt")).unwrap();
        b.sh("set-state A good").unwrap();
        assert_eq!(
            fs::read(b.bootcfg.dir.join("autoboot.txt")).unwrap(),
            before
        );
    }

    #[test]
    fn bad_calls_are_errors() {
        let b = backend("backend-usage", 2, false);
        assert!(matches!(
            b.sh("set-primary C"),
            Err(BackendError::UnknownSlot(_))
        ));
        assert!(matches!(
            b.sh("set-state A maybe"),
            Err(BackendError::Usage(_))
        ));
        assert!(matches!(b.sh("frobnicate"), Err(BackendError::Usage(_))));
        fs::write(
            b.bootcfg.dir.join("autoboot.txt"),
            "[all]\ntryboot_a_b=1\nboot_partition=5\n",
        )
        .unwrap();
        assert!(matches!(b.sh("get-primary"), Err(BackendError::Foreign(5))));
    }
}
