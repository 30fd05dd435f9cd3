//! TLS: the server side (rustls, TLS 1.2 and 1.3 only, ALPN h2 and
//! http/1.1), the upstream client's trust, and development certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {}: {source}", path.display())]
    Cert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate file {} holds no certificate", .0.display())]
    NoCert(PathBuf),
    #[error("cannot read private key {}: {source}", path.display())]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate and key do not make a usable pair: {0}")]
    Pair(rustls::Error),
    #[error("cannot read CA file {}: {source}", path.display())]
    Ca {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("CA file {}: {source}", path.display())]
    CaCert {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// PEM files (a chain, a key, a CA bundle) are far smaller than this.
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

fn read_pem(path: &Path) -> Result<Vec<u8>, rustls::pki_types::pem::Error> {
    crate::files::read(path, MAX_PEM_BYTES).map_err(rustls::pki_types::pem::Error::Io)
}

fn read_pem_certs(
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    CertificateDer::pem_slice_iter(&read_pem(path)?).collect()
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = read_pem_certs(path).map_err(|source| TlsError::Cert {
        path: path.to_path_buf(),
        source,
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(path.to_path_buf()));
    }
    Ok(certs)
}

/// The listener's TLS configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certs(cert)?;
    let key = read_pem(key)
        .and_then(|pem| PrivateKeyDer::from_pem_slice(&pem))
        .map_err(|source| TlsError::Key {
            path: key.to_path_buf(),
            source,
        })?;
    // rustls offers no protocol below TLS 1.2.
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Pair)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Pair)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The listeners' certificate, replaceable while running: cert-manager and
/// friends rotate the files in place; a new pair that loads is swapped in,
/// a bad one is logged and the old one stays.
pub struct ServerTls {
    config: arc_swap::ArcSwap<rustls::ServerConfig>,
    cert: PathBuf,
    key: PathBuf,
    stamp: std::sync::Mutex<Vec<crate::files::FileStamp>>,
}

fn file_stamps(files: &[&Path]) -> Vec<crate::files::FileStamp> {
    files.iter().map(|f| crate::files::file_stamp(f)).collect()
}

impl ServerTls {
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let config = server_config(cert, key)?;
        Ok(Self {
            config: arc_swap::ArcSwap::from_pointee(config),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            stamp: std::sync::Mutex::new(file_stamps(&[cert, key])),
        })
    }

    /// An acceptor with the current certificate (one atomic load).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    pub fn files(&self) -> [PathBuf; 2] {
        [self.cert.clone(), self.key.clone()]
    }

    /// Reloads the pair if either file changed. `Ok(true)`: a new pair is in
    /// use; `Ok(false)`: nothing changed; `Err`: the new pair is refused and
    /// the old one stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = file_stamps(&[&self.cert, &self.key]);
        let mut seen = match self.stamp.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *seen == now {
            return Ok(false);
        }
        *seen = now;
        let config = server_config(&self.cert, &self.key)?;
        self.config.store(std::sync::Arc::new(config));
        Ok(true)
    }
}

/// The upstream client's TLS: trust `ca` when given, else the system's roots.
pub fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let list = read_pem_certs(path).map_err(|source| TlsError::Ca {
                path: path.to_path_buf(),
                source,
            })?;
            for c in list {
                roots.add(c).map_err(|source| TlsError::CaCert {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
        }
        None => {
            // Unreadable system certificates only narrow what is trusted.
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Pair)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

/// Files written by [`dev_certificates`].
pub struct DevFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a development CA and a server certificate it signed, for `names`
/// (DNS names or IP addresses), into `dir`: `ca.pem`, `cert.pem` (leaf then
/// CA) and `key.pem` (mode 0600). For local testing only.
pub fn dev_certificates(dir: &Path, names: &[String]) -> Result<DevFiles, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "netwarden development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "netwarden development");
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let files = DevFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(&files.ca, &ca_cert.pem())?;
    write(
        &files.cert,
        &format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
    )?;
    write(&files.key, &leaf_key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificates_load_as_a_server_and_are_trusted_by_their_ca() {
        let dir = tempfile::tempdir().unwrap();
        let files =
            dev_certificates(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let server = server_config(&files.cert, &files.key).unwrap();
        assert_eq!(
            server.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        client_config(Some(&files.ca)).unwrap();
    }

    #[test]
    fn missing_or_bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = server_config(&missing, &missing).unwrap_err();
        assert!(e.to_string().starts_with("cannot read certificate"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = server_config(&empty, &empty).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
    }
}
