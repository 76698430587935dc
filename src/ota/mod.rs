//! Updates of the SD-card appliance: two slots, A and B, each a boot
//! partition (kernel, initramfs, `cmdline.txt`) and a read-only system
//! partition; RAUC writes the slot that is not running and this module is
//! the glue between RAUC and the Raspberry Pi 5 firmware's tryboot.
//!
//! - [`autoboot`]: the firmware's `autoboot.txt`, parsed and written;
//! - [`bootinfo`]: which partition the firmware booted, and whether as a
//!   tryboot;
//! - [`bootcfg`]: the FAT partition that holds `autoboot.txt`, and the one
//!   careful way it is rewritten;
//! - [`backend`]: RAUC's `bootloader=custom` interface (get/set primary,
//!   get/set state) on top of the three above;
//! - [`version`]: refusing a bundle older than the running system;
//! - [`gate`]: the health gate that commits a tryboot or rolls it back;
//! - [`install`]: `blackbox update FILE` and the installs the web page asks for;
//! - [`owned_dir`]: how root works in the service's update directory
//!   without following what the service left there.
//!
//! Partition numbers are the layout's: A boots from partition 2, B from 3.

pub mod autoboot;
pub mod backend;
pub mod bootcfg;
pub mod bootinfo;
pub mod command;
pub mod gate;
pub mod install;
pub mod owned_dir;
pub mod version;

use std::fmt;

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// The boot partition's number on the card.
    pub fn partition(self) -> u32 {
        match self {
            Self::A => 2,
            Self::B => 3,
        }
    }

    /// The slot booted from partition `n`, if any.
    pub fn from_partition(n: u32) -> Option<Self> {
        match n {
            2 => Some(Self::A),
            3 => Some(Self::B),
            _ => None,
        }
    }

    /// RAUC's `bootname`.
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
        }
    }

    /// The slot from RAUC's `bootname`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.trim() {
            "A" => Some(Self::A),
            "B" => Some(Self::B),
            _ => None,
        }
    }

    /// The other one.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fresh directory for one test.
#[cfg(test)]
pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("blackbox-ota-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
