//! What the radio is doing, as `blackbox wifi run` (root) tells the page
//! (the service user): a small JSON file in the supervisor's runtime
//! directory, replaced atomically. It never holds a passphrase.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The radio's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WifiStatus {
    /// `access-point`, `client` (joined or joining a known network),
    /// `off`, or `failed` (see `error`).
    pub state: String,
    /// The access point's name, or the network joined.
    pub ssid: Option<String>,
    /// Phones on the access point.
    pub clients: Option<u32>,
    /// Joined (a client whose link is up).
    pub connected: Option<bool>,
    /// The joined network's signal, dBm.
    pub signal_dbm: Option<i32>,
    /// Seconds since the Unix epoch when this state began.
    pub since: u64,
    /// Why the radio is not doing what it should.
    pub error: Option<String>,
}

/// Writes `status` to `path` (temporary file and rename; readable by all:
/// it holds no secret).
pub fn write(path: &Path, status: &WifiStatus) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec(status).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The last status written, if there is one that parses.
pub fn read(path: &Path) -> Option<WifiStatus> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_round_trips() {
        let dir = std::env::temp_dir().join(format!("blackbox-wstat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("status.json");
        assert_eq!(read(&file), None);
        let s = WifiStatus {
            state: "access-point".into(),
            ssid: Some("blackbox-3F9A".into()),
            clients: Some(1),
            since: 5,
            ..Default::default()
        };
        write(&file, &s).unwrap();
        assert_eq!(read(&file), Some(s));
        std::fs::write(&file, "{").unwrap();
        assert_eq!(read(&file), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
