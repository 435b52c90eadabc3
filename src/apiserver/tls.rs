//! HTTPS for the embedded API server: a self-signed certificate for `127.0.0.1` and
//! `localhost`, generated at start, and an accept loop serving the router over TLS.
//! HTTPS is not optional: kubectl never sends a bearer token over plain HTTP.

use axum::Router;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A generated serving certificate.
pub struct ServingCert {
    /// Certificate, DER.
    pub der: Vec<u8>,
    /// Certificate, PEM (for kubeconfigs).
    pub pem: String,
    acceptor: TlsAcceptor,
}

impl ServingCert {
    /// Generates a self-signed certificate for the loopback names.
    pub fn generate() -> Result<Self, String> {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned(), "::1".to_owned()];
        let key = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
        let der = key.cert.der().to_vec();
        let pem = key.cert.pem();
        let private =
            rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![rustls::pki_types::CertificateDer::from(der.clone())], private)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { der, pem, acceptor: TlsAcceptor::from(Arc::new(config)) })
    }
}

/// Serves `app` over TLS until `cancel`; open connections (watches) end with it.
pub async fn serve(listener: TcpListener, cert: &ServingCert, app: Router, cancel: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = cert.acceptor.clone();
        let app = app.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
}
