//! The password: stored only as an argon2id hash (a PHC string) in the file
//! `http.password_file` names, written atomically, readable by its owner
//! alone. A password generated at first boot is marked in the file, so the
//! page can ask the owner to choose their own.
//!
//! The file holds one PHC string on a line; a line `# first-boot` before it
//! marks a generated password. Anything else is refused with a clear error.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

const FIRST_BOOT: &str = "# first-boot";
/// Shorter than this is refused when setting a password.
pub const MIN_LENGTH: usize = 8;

/// A stored password: its hash, and whether it was generated at first boot.
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    phc: String,
    pub first_boot: bool,
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not a secret, but it has no business in logs either.
        f.debug_struct("Password")
            .field("first_boot", &self.first_boot)
            .finish_non_exhaustive()
    }
}

/// Why a password file could not be used.
#[derive(Debug)]
pub enum PasswordError {
    Io(PathBuf, io::Error),
    /// The file is not one PHC string (with its optional marker).
    Malformed(PathBuf, String),
    /// A new password that is too short or otherwise refused.
    Weak(String),
    Hash(String),
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "password file {}: {e}", p.display()),
            Self::Malformed(p, why) => write!(f, "password file {}: {why}", p.display()),
            Self::Weak(why) => f.write_str(why),
            Self::Hash(why) => write!(f, "cannot hash the password: {why}"),
        }
    }
}

impl std::error::Error for PasswordError {}

impl Password {
    /// Hashes `clear` (argon2id, a random salt, the recommended costs).
    pub fn hash(clear: &str, first_boot: bool) -> Result<Self, PasswordError> {
        if clear.chars().count() < MIN_LENGTH {
            return Err(PasswordError::Weak(format!(
                "a password needs at least {MIN_LENGTH} characters"
            )));
        }
        let phc = Argon2::default()
            .hash_password(clear.as_bytes())
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .to_string();
        Ok(Self { phc, first_boot })
    }

    /// Whether `clear` is the password. Slow on purpose (tens of
    /// milliseconds): call it off the executor. The comparison inside is
    /// constant-time.
    pub fn verify(&self, clear: &[u8]) -> bool {
        Argon2::default()
            .verify_password(clear, self.phc.as_str())
            .is_ok()
    }

    /// Parses a password file's text.
    fn parse(path: &Path, text: &str) -> Result<Self, PasswordError> {
        let mut first_boot = false;
        let mut phc = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line == FIRST_BOOT {
                first_boot = true;
            } else if line.starts_with("$argon2id$") && phc.is_none() {
                phc = Some(line.to_string());
            } else {
                return Err(PasswordError::Malformed(
                    path.to_path_buf(),
                    "expected one argon2id hash (write it with `blackbox passwd`)".into(),
                ));
            }
        }
        let phc = phc.ok_or_else(|| {
            PasswordError::Malformed(path.to_path_buf(), "no password hash in it".into())
        })?;
        // A hash the verifier cannot read would lock everybody out: refuse
        // it now, at start-up, with the file named.
        argon2::password_hash::phc::PasswordHash::new(&phc)
            .map_err(|e| PasswordError::Malformed(path.to_path_buf(), e.to_string()))?;
        Ok(Self { phc, first_boot })
    }

    /// Reads the password file; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, PasswordError> {
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PasswordError::Io(path.to_path_buf(), e)),
        }
    }

    /// Writes the file atomically (a temporary file, fsync, rename, fsync of
    /// the directory), readable and writable by its owner alone.
    pub fn save(&self, path: &Path) -> Result<(), PasswordError> {
        let io = |e| PasswordError::Io(path.to_path_buf(), e);
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .map_or("password".into(), |n| n.to_string_lossy())
        ));
        let mut text = String::new();
        if self.first_boot {
            text.push_str(FIRST_BOOT);
            text.push('\n');
        }
        text.push_str(&self.phc);
        text.push('\n');
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, path).map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

/// A new random password for first boot: 16 characters from an alphabet
/// without look-alikes (about 88 bits), in groups of four for reading off a
/// screen or a card.
pub fn generate() -> Result<String, PasswordError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY346789";
    let mut out = String::new();
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    for &b in bytes.iter().filter(|&&b| usize::from(b) < limit) {
        if out.len() == 19 {
            break;
        }
        if out.len() % 5 == 4 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
    }
    if out.len() < 19 {
        return generate();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_save_load() {
        let dir = std::env::temp_dir().join(format!("blackbox-pw-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("password");
        let p = Password::hash("correct horse", false).unwrap();
        assert!(p.verify(b"correct horse"));
        assert!(!p.verify(b"correct horsf"));
        p.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        let back = Password::load(&path).unwrap().unwrap();
        assert_eq!(back, p);
        assert!(!format!("{back:?}").contains("argon2"), "no hash in Debug");
        let generated = generate().unwrap();
        assert_eq!(generated.len(), 19);
        let first = Password::hash(&generated, true).unwrap();
        first.save(&path).unwrap();
        let back = Password::load(&path).unwrap().unwrap();
        assert!(back.first_boot && back.verify(generated.as_bytes()));
        assert!(Password::hash("short", false).is_err());
        fs::write(&path, "hunter2\n").unwrap();
        assert!(Password::load(&path).is_err());
        fs::write(&path, "$argon2id$garbage\n").unwrap();
        assert!(Password::load(&path).is_err());
        assert_eq!(Password::load(&dir.join("none")).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
