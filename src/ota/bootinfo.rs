//! What the firmware says about this boot: the partition it booted and
//! whether it was a tryboot.
//!
//! On a Pi 5 the firmware puts both in the device tree, as big-endian 32-bit
//! cells: `/proc/device-tree/chosen/bootloader/partition` and `.../tryboot`.
//! Under qemu there is no such firmware; the stand-in that plays it (see
//! `hil-tests/ota/`) appends `blackbox.boot_partition=N blackbox.tryboot=0|1`
//! to the kernel command line instead, which is read when the device tree
//! has no answer.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Slot;

/// Where the answers are.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The firmware's device-tree node.
    pub device_tree: PathBuf,
    /// The kernel command line.
    pub cmdline: PathBuf,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            device_tree: PathBuf::from("/proc/device-tree/chosen/bootloader"),
            cmdline: PathBuf::from("/proc/cmdline"),
        }
    }
}

/// This boot, as the firmware started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    /// The partition the firmware booted from.
    pub partition: u32,
    /// A one-shot tryboot (not yet committed).
    pub tryboot: bool,
}

impl BootInfo {
    /// The booted slot, if the partition is one of the two.
    pub fn slot(&self) -> Option<Slot> {
        Slot::from_partition(self.partition)
    }
}

/// Why the boot could not be identified.
#[derive(Debug)]
pub enum BootInfoError {
    /// Neither the device tree nor the command line says.
    Unknown,
    /// A value that is not a number.
    Malformed(PathBuf, String),
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str(
                "the firmware did not say which partition it booted (no device-tree \
                 node chosen/bootloader and no blackbox.boot_partition= on the command line)",
            ),
            Self::Malformed(p, why) => write!(f, "{}: {why}", p.display()),
        }
    }
}

impl std::error::Error for BootInfoError {}

fn cell(path: &Path) -> Result<Option<u32>, BootInfoError> {
    match std::fs::read(path) {
        Ok(b) if b.len() == 4 => Ok(Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        Ok(b) => Err(BootInfoError::Malformed(
            path.to_path_buf(),
            format!("{} bytes, expected a 4-byte cell", b.len()),
        )),
        Err(_) => Ok(None),
    }
}

/// The value of `key=` on a kernel command line.
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .next_back()
}

/// Reads this boot's partition and tryboot flag.
pub fn read(src: &Sources) -> Result<BootInfo, BootInfoError> {
    if let Some(partition) = cell(&src.device_tree.join("partition"))? {
        let tryboot = cell(&src.device_tree.join("tryboot"))?.unwrap_or(0) != 0;
        return Ok(BootInfo { partition, tryboot });
    }
    let cmdline = std::fs::read_to_string(&src.cmdline).map_err(|_| BootInfoError::Unknown)?;
    let number = |key: &str| -> Result<Option<u32>, BootInfoError> {
        cmdline_value(&cmdline, key)
            .map(|v| {
                v.parse().map_err(|_| {
                    BootInfoError::Malformed(src.cmdline.clone(), format!("{key}={v}"))
                })
            })
            .transpose()
    };
    let partition = number("blackbox.boot_partition")?.ok_or(BootInfoError::Unknown)?;
    let tryboot = number("blackbox.tryboot")?.unwrap_or(0) != 0;
    Ok(BootInfo { partition, tryboot })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path) -> Sources {
        Sources {
            device_tree: dir.join("dt"),
            cmdline: dir.join("cmdline"),
        }
    }

    #[test]
    fn device_tree_cells_win() {
        let dir = super::super::scratch("bootinfo-dt");
        let src = sources(&dir);
        std::fs::create_dir_all(&src.device_tree).unwrap();
        std::fs::write(src.device_tree.join("partition"), 3u32.to_be_bytes()).unwrap();
        std::fs::write(src.device_tree.join("tryboot"), 1u32.to_be_bytes()).unwrap();
        std::fs::write(&src.cmdline, "blackbox.boot_partition=2").unwrap();
        let b = read(&src).unwrap();
        assert_eq!((b.partition, b.tryboot, b.slot()), (3, true, Some(Slot::B)));
    }

    #[test]
    fn the_stand_in_uses_the_command_line() {
        let dir = super::super::scratch("bootinfo-cmd");
        let src = sources(&dir);
        std::fs::write(
            &src.cmdline,
            "root=PARTUUID=x rauc.slot=A blackbox.boot_partition=2 blackbox.tryboot=0\n",
        )
        .unwrap();
        let b = read(&src).unwrap();
        assert_eq!(
            (b.partition, b.tryboot, b.slot()),
            (2, false, Some(Slot::A))
        );
    }

    #[test]
    fn unknown_and_malformed_are_errors() {
        let dir = super::super::scratch("bootinfo-bad");
        let src = sources(&dir);
        std::fs::write(&src.cmdline, "quiet").unwrap();
        assert!(matches!(read(&src), Err(BootInfoError::Unknown)));
        std::fs::write(&src.cmdline, "blackbox.boot_partition=two").unwrap();
        assert!(matches!(read(&src), Err(BootInfoError::Malformed(..))));
        std::fs::create_dir_all(&src.device_tree).unwrap();
        std::fs::write(src.device_tree.join("partition"), b"\x02").unwrap();
        assert!(matches!(read(&src), Err(BootInfoError::Malformed(..))));
    }

    #[test]
    fn command_line_values() {
        let c = "a=1 rauc.slot=A b rauc.slot=B";
        assert_eq!(cmdline_value(c, "rauc.slot"), Some("B"));
        assert_eq!(cmdline_value(c, "b"), None);
    }
}
