//! The certificates an [`App`](crate::App) trusts for `https://` auth and `realms://` sync
//! when it is given its own CA ([`App::with_trusted_ca`](crate::App::with_trusted_ca)): a
//! self-hosted server's CA, or a test CA.
//!
//! Given certificates *replace* the public roots (Mozilla's, built in through webpki-roots)
//! for both clients, as `curl --cacert` and most HTTP libraries do: the app then talks only
//! to servers whose chain ends at one of them. To trust the public roots as well, put them in
//! the same PEM (e.g. append the system bundle).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::error::{Error, Result};

/// The trusted roots of an app, ready for both clients.
#[derive(Clone)]
pub(crate) struct TrustedRoots {
    /// The PEM as given (apps of one base directory must agree on it).
    pem: Vec<u8>,
    /// Every certificate of the PEM, for the auth client (ureq).
    certs: Vec<CertificateDer<'static>>,
    /// The rustls client configuration of the sync connection.
    sync: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoots")
            .field("certificates", &self.certs.len())
            .finish()
    }
}

impl TrustedRoots {
    /// Parses the certificates of `pem` (one or more `CERTIFICATE` blocks; other blocks are
    /// skipped).
    ///
    /// # Errors
    /// `InvalidArgument` if a block is malformed, there is no certificate, or rustls refuses
    /// one as a trust anchor.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<TrustedRoots> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::invalid(format!("the trusted CA is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::invalid(
                "the trusted CA holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        let mut store = rustls::RootCertStore::empty();
        for cert in &certs {
            store.add(cert.clone()).map_err(|e| {
                Error::invalid(format!("the trusted CA holds an unusable certificate: {e}"))
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let sync = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(TrustedRoots {
            pem: pem.to_vec(),
            certs,
            sync: Arc::new(sync),
        })
    }

    /// Whether `other` was made from the same PEM.
    pub(crate) fn same_as(&self, other: &TrustedRoots) -> bool {
        self.pem == other.pem
    }

    /// The roots for the auth client.
    pub(crate) fn ureq_roots(&self) -> ureq::tls::RootCerts {
        self.certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .into()
    }

    /// The TLS configuration of sync WebSockets.
    pub(crate) fn sync_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.sync)
    }
}
