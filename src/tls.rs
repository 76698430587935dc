//! HTTPS: the device's certificate and key, and the TLS side of the web
//! server. The password and the session cookie cross the car's Wi-Fi, so
//! the appliance speaks HTTPS (as PiKVM does): each device makes its own
//! key and self-signed certificate at first boot ([`generate`], called by
//! `blackbox firstboot --tls-dir`), and shows the certificate's SHA-256
//! fingerprint beside the first-boot password so the owner can check what
//! the browser shows. An owner's own certificate works the same way
//! (`http.tls_cert`, `http.tls_key`). rustls does the TLS, with ring's
//! cryptography; no OpenSSL.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Why HTTPS could not be set up.
#[derive(Debug)]
pub enum TlsError {
    Io(&'static str, PathBuf, io::Error),
    /// A file that holds no certificate or no private key.
    Pem(PathBuf, String),
    /// rustls refused the pair (a key that does not match, say).
    Config(String),
    /// The certificate could not be made.
    Generate(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(what, p, e) => write!(f, "cannot {what} {}: {e}", p.display()),
            Self::Pem(p, why) => write!(f, "{}: {why}", p.display()),
            Self::Config(why) => write!(f, "the certificate and key do not work together: {why}"),
            Self::Generate(why) => write!(f, "cannot make a certificate: {why}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// A loaded certificate: what accepts TLS connections, and its fingerprint.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: futures_rustls::TlsAcceptor,
    /// SHA-256 of the leaf certificate, as `AB:CD:…`.
    pub fingerprint: String,
}

/// The SHA-256 fingerprint of a DER certificate, as browsers show it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Loads `cert` (a PEM chain, leaf first) and `key` (a PEM private key).
pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem(cert.to_path_buf(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(cert.to_path_buf(), e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::Pem(
            cert.to_path_buf(),
            "no certificate in it".into(),
        ));
    };
    let fingerprint = fingerprint(leaf.as_ref());
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Pem(key.to_path_buf(), e.to_string()))?;
    // rustls marks ring's provider deprecated because it has no
    // post-quantum key exchange; aws-lc-rs, which has, needs cmake to
    // build (and for the Pi's cross build). Classical X25519 and P-256
    // are what the phones on the dashcam's Wi-Fi offer anyway.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: futures_rustls::TlsAcceptor::from(Arc::new(config)),
        fingerprint,
    })
}

/// Writes `bytes` to `path` through a new temporary file, synced and
/// renamed, with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| TlsError::Io("create", tmp.clone(), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| TlsError::Io("write", tmp.clone(), e))?;
    fs::rename(&tmp, path).map_err(|e| TlsError::Io("rename", tmp, e))
}

/// Makes a new key (ECDSA P-256) and a self-signed certificate for
/// `names` (host names and IP addresses), valid from 1975 to 4096 so that
/// a device that boots with a stale clock still presents a valid one;
/// writes the key (owner-only) and the certificate, the key first.
/// Returns the certificate's fingerprint.
pub fn generate(cert: &Path, key: &Path, names: &[String]) -> Result<String, TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    for dir in [cert.parent(), key.parent()].into_iter().flatten() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir).map_err(|e| TlsError::Io("create", dir.to_path_buf(), e))?;
        }
    }
    write_new(key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, made.cert.pem().as_bytes(), 0o644)?;
    Ok(fingerprint(made.cert.der()))
}

/// The names a device's own certificate carries: `localhost`, its host
/// name and that name `.local`, `blackbox.local`, and 127.0.0.1.
pub fn device_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "blackbox.local".to_string()];
    if let Ok(h) = nix::unistd::gethostname()
        && let Some(h) = h.to_str()
        && !h.is_empty()
        && h != "localhost"
    {
        names.push(h.to_string());
        names.push(format!("{h}.local"));
    }
    names.push("127.0.0.1".into());
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_loads_and_keeps_its_fingerprint() {
        let dir = std::env::temp_dir().join(format!("blackbox-tls-{}", std::process::id()));
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let fp = generate(&cert, &key, &device_names()).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let tls = load(&cert, &key).unwrap();
        assert_eq!(tls.fingerprint, fp);
        // A key that is not the certificate's is refused.
        let other = dir.join("other");
        generate(&other.join("c.pem"), &other.join("k.pem"), &["x".into()]).unwrap();
        assert!(matches!(
            load(&cert, &other.join("k.pem")),
            Err(TlsError::Config(_))
        ));
        assert!(matches!(load(&key, &key), Err(TlsError::Pem(..))));
        fs::remove_dir_all(&dir).unwrap();
    }
}
