//! `autoboot.txt`: the Raspberry Pi 5 firmware's choice of boot partition.
//!
//! The file sits alone on the card's first FAT partition (`bootcfg`). The
//! firmware reads at most 512 bytes of it, in sections: `[all]` applies to
//! every boot, `[tryboot]` only to a boot that `reboot "0 tryboot"` asked
//! for (a one-shot flag the firmware clears before it boots), `[none]` to
//! nothing. `tryboot_a_b=1` tells it that `boot_partition` names a partition
//! holding the whole boot file set, so A/B is a choice of partition number.
//! This module parses what the firmware would act on and writes the one
//! form blackbox uses:
//!
//! ```text
//! [all]
//! tryboot_a_b=1
//! boot_partition=2
//! [tryboot]
//! boot_partition=3
//! ```

use std::fmt;

use super::Slot;

/// The firmware reads no more than this many bytes of the file.
pub const MAX_LEN: usize = 512;

/// What the firmware does with an `autoboot.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autoboot {
    /// The partition of a normal boot.
    pub default: u32,
    /// The partition of a tryboot.
    pub tryboot: u32,
}

/// Why an `autoboot.txt` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutobootError {
    /// Longer than the firmware reads.
    TooLong(usize),
    /// Not text.
    NotText,
    /// A line the firmware would not understand.
    BadLine(usize, String),
    /// `tryboot_a_b=1` is missing from `[all]`.
    NotAb,
    /// No `boot_partition` in `[all]`.
    NoDefault,
}

impl fmt::Display for AutobootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "{n} bytes; the firmware reads only {MAX_LEN}"),
            Self::NotText => f.write_str("not UTF-8 text"),
            Self::BadLine(n, l) => write!(f, "line {n} is not understood: {l:?}"),
            Self::NotAb => f.write_str("no tryboot_a_b=1 in [all]"),
            Self::NoDefault => f.write_str("no boot_partition in [all]"),
        }
    }
}

impl std::error::Error for AutobootError {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    All,
    Tryboot,
    Other,
}

impl Autoboot {
    /// Normal boots start `default`; a tryboot starts the other slot.
    pub fn with_default(default: Slot) -> Self {
        Self {
            default: default.partition(),
            tryboot: default.other().partition(),
        }
    }

    /// The slot a normal boot starts, if the partition is one of ours.
    pub fn default_slot(&self) -> Option<Slot> {
        Slot::from_partition(self.default)
    }

    /// The slot a tryboot starts, if the partition is one of ours.
    pub fn tryboot_slot(&self) -> Option<Slot> {
        Slot::from_partition(self.tryboot)
    }

    /// Parses the file as the firmware reads it: the last value of a key in
    /// a section wins; `[tryboot]` overrides `[all]` for a tryboot; comments
    /// (`#`) and blank lines are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, AutobootError> {
        if bytes.len() > MAX_LEN {
            return Err(AutobootError::TooLong(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| AutobootError::NotText)?;
        let mut section = Section::All;
        let (mut ab, mut default, mut tryboot) = (false, None, None);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = match name.trim() {
                    "all" => Section::All,
                    "tryboot" => Section::Tryboot,
                    _ => Section::Other,
                };
                continue;
            }
            let bad = || AutobootError::BadLine(i + 1, raw.to_string());
            let (key, value) = line.split_once('=').ok_or_else(bad)?;
            let value: u32 = value.trim().parse().map_err(|_| bad())?;
            match (section, key.trim()) {
                (Section::Other, _) => {}
                (Section::All, "tryboot_a_b") => ab = value == 1,
                (Section::All, "boot_partition") => default = Some(value),
                (Section::Tryboot, "boot_partition") => tryboot = Some(value),
                (Section::Tryboot, "tryboot_a_b") => {}
                _ => return Err(bad()),
            }
        }
        if !ab {
            return Err(AutobootError::NotAb);
        }
        let default = default.ok_or(AutobootError::NoDefault)?;
        Ok(Self {
            default,
            tryboot: tryboot.unwrap_or(default),
        })
    }

    /// The file's text.
    pub fn render(&self) -> String {
        format!(
            "# Written by blackbox (A = partition 2, B = partition 3).\n\
             [all]\ntryboot_a_b=1\nboot_partition={}\n[tryboot]\nboot_partition={}\n",
            self.default, self.tryboot
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_both_ways() {
        for slot in [Slot::A, Slot::B] {
            let a = Autoboot::with_default(slot);
            let text = a.render();
            assert!(text.len() <= MAX_LEN);
            let back = Autoboot::parse(text.as_bytes()).unwrap();
            assert_eq!(back, a);
            assert_eq!(back.default_slot(), Some(slot));
            assert_eq!(back.tryboot_slot(), Some(slot.other()));
        }
    }

    #[test]
    fn reads_the_documented_form() {
        let text = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";
        let a = Autoboot::parse(text.as_bytes()).unwrap();
        assert_eq!((a.default, a.tryboot), (2, 3));
    }

    #[test]
    fn later_values_win_and_other_sections_are_ignored() {
        let text = "# c\n[all]\ntryboot_a_b=1\nboot_partition=2\nboot_partition=3 # x\n\
                    [none]\nboot_partition=7\n[tryboot]\nboot_partition=2\n";
        let a = Autoboot::parse(text.as_bytes()).unwrap();
        assert_eq!((a.default, a.tryboot), (3, 2));
    }

    #[test]
    fn no_tryboot_section_means_the_same_partition() {
        let a = Autoboot::parse(b"[all]\ntryboot_a_b=1\nboot_partition=3\n").unwrap();
        assert_eq!((a.default, a.tryboot), (3, 3));
    }

    #[test]
    fn refuses_what_the_firmware_would_not_boot_as_ab() {
        assert_eq!(
            Autoboot::parse(b"[all]\nboot_partition=2\n"),
            Err(AutobootError::NotAb)
        );
        assert_eq!(
            Autoboot::parse(b"[all]\ntryboot_a_b=1\n"),
            Err(AutobootError::NoDefault)
        );
        assert!(matches!(
            Autoboot::parse(b"[all]\ntryboot_a_b=1\nboot_partition=two\n"),
            Err(AutobootError::BadLine(3, _))
        ));
        assert!(matches!(
            Autoboot::parse(&[b'#'; 513]),
            Err(AutobootError::TooLong(513))
        ));
        assert_eq!(Autoboot::parse(&[0xff, 0xfe]), Err(AutobootError::NotText));
        // A half-written file (a cut during a write) is refused, not guessed.
        assert!(Autoboot::parse(b"[all]\ntryboot_a_b=1\nboot_parti").is_err());
    }
}
