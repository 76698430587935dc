//! Login sessions for the page: random 128-bit ids handed out as a cookie,
//! kept in memory only (a restart logs everybody out), each expiring a fixed
//! time after login. At most [`MAX`] live at once; a new login past that
//! evicts the oldest. Ids are compared in constant time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::sync::lock;

/// Sessions alive at once, at most.
pub const MAX: usize = 64;

struct Session {
    id: [u8; 16],
    expires: Instant,
}

/// The live sessions.
pub struct Sessions {
    list: Mutex<Vec<Session>>,
    lifetime: Duration,
}

fn parse(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Self {
        Self {
            list: Mutex::new(Vec::new()),
            lifetime,
        }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Starts a session; returns its id, as hex, for the cookie.
    pub fn create(&self) -> Result<String, getrandom::Error> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)?;
        let now = Instant::now();
        let mut list = lock(&self.list);
        list.retain(|s| s.expires > now);
        if list.len() >= MAX {
            list.remove(0);
        }
        list.push(Session {
            id,
            expires: now + self.lifetime,
        });
        Ok(id.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `hex` is a live session. Every live id is compared, each in
    /// constant time, so the time taken says nothing about any of them.
    pub fn valid(&self, hex: &str) -> bool {
        let Some(id) = parse(hex) else {
            return false;
        };
        let now = Instant::now();
        let list = lock(&self.list);
        let mut found = subtle::Choice::from(0);
        for s in list.iter() {
            found |= s.id.ct_eq(&id) & subtle::Choice::from(u8::from(s.expires > now));
        }
        found.into()
    }

    /// Ends a session (logout).
    pub fn remove(&self, hex: &str) {
        if let Some(id) = parse(hex) {
            lock(&self.list).retain(|s| !bool::from(s.id.ct_eq(&id)));
        }
    }

    /// Ends every session (the password changed).
    pub fn clear(&self) {
        lock(&self.list).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_live_end_and_expire() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(s.valid(&a) && s.valid(&b));
        assert!(!s.valid("00000000000000000000000000000000"));
        assert!(!s.valid("not hex"));
        s.remove(&a);
        assert!(!s.valid(&a) && s.valid(&b));
        s.clear();
        assert!(!s.valid(&b));
        let short = Sessions::new(Duration::ZERO);
        let c = short.create().unwrap();
        assert!(!short.valid(&c), "expired");
        let many = Sessions::new(Duration::from_secs(60));
        let first = many.create().unwrap();
        for _ in 0..MAX {
            many.create().unwrap();
        }
        assert!(!many.valid(&first), "the oldest made room");
    }
}
