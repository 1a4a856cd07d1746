//! TLS with rustls: the server configuration built from gunicorn's
//! `--certfile`, `--keyfile`, `--ca-certs`, `--cert-reqs`, `--ciphers` and
//! `--ssl-version` (which gunicorn 27 ignores and rustls honours, for the
//! versions it implements: TLS 1.2 and 1.3).
//!
//! `--do-handshake-on-connect` and `--suppress-ragged-eofs` have no rustls
//! counterpart and change nothing: the handshake always runs on the
//! worker's event loop right after accept (never holding the app), and a
//! peer that closes without `close_notify` simply ends its connection.
//!
//! The binary builds it before binding any socket, so a bad certificate or
//! cipher stops startup with a message naming the setting; workers inherit
//! the finished configuration through `fork()`.

use std::path::Path;
use std::sync::Arc;

use ferricorn_config::{Settings, SslVersion};
use rustls::crypto::ring as provider;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS setting that cannot be honoured.
#[derive(Debug, thiserror::Error)]
#[error("error: invalid value for --{setting}: {message}")]
pub struct TlsError {
    setting: &'static str,
    message: String,
}

fn error(setting: &'static str, message: impl Into<String>) -> TlsError {
    TlsError {
        setting,
        message: message.into(),
    }
}

/// The rustls configuration, or `None` when `--certfile` is not set.
pub fn server_config(settings: &Settings) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let Some(certfile) = &settings.certfile else {
        if settings.keyfile.is_some() {
            return Err(error("keyfile", "--keyfile needs --certfile"));
        }
        return Ok(None);
    };
    let keyfile = settings
        .keyfile
        .as_deref()
        .ok_or_else(|| error("certfile", "--certfile needs --keyfile"))?;
    let certs = load_certs(certfile, "certfile")?;
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
        error(
            "keyfile",
            format!("{}: no usable private key ({e})", keyfile.display()),
        )
    })?;

    let mut crypto = provider::default_provider();
    if let Some(ciphers) = &settings.ciphers {
        crypto.cipher_suites = select_ciphers(ciphers)?;
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(crypto))
        .with_protocol_versions(protocol_versions(settings.ssl_version))
        .map_err(|e| {
            // No cipher suite fits the versions: name what the user set.
            let setting = if settings.ciphers.is_some() {
                "ciphers"
            } else {
                "ssl-version"
            };
            error(
                setting,
                format!("{e} (--ssl-version {})", settings.ssl_version.as_str()),
            )
        })?;
    let builder = match (settings.cert_reqs, &settings.ca_certs) {
        (0, _) => builder.with_no_client_auth(),
        (_, None) => return Err(error("cert-reqs", "client certificates need --ca-certs")),
        (reqs, Some(ca_path)) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca_path, "ca-certs")? {
                roots
                    .add(cert)
                    .map_err(|e| error("ca-certs", format!("{}: {e}", ca_path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = if reqs == 1 {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| error("ca-certs", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| error("certfile", format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = settings
        .http_protocols
        .iter()
        .rev()
        .map(|p| match p.as_str() {
            "h2" => b"h2".to_vec(),
            _ => b"http/1.1".to_vec(),
        })
        .collect();
    // Offer h2 first when enabled: clients pick from our order.
    config.alpn_protocols.sort_by_key(|p| p.as_slice() != b"h2");
    Ok(Some(Arc::new(config)))
}

/// The TLS versions `--ssl-version` allows.
fn protocol_versions(version: SslVersion) -> &'static [&'static SupportedProtocolVersion] {
    static BOTH: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];
    static ONLY_12: [&SupportedProtocolVersion; 1] = [&TLS12];
    static ONLY_13: [&SupportedProtocolVersion; 1] = [&TLS13];
    match version {
        SslVersion::Tls => &BOTH,
        SslVersion::Tls12 => &ONLY_12,
        SslVersion::Tls13 => &ONLY_13,
    }
}

fn load_certs(
    path: &Path,
    setting: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(setting, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            setting,
            format!("{}: no certificate found", path.display()),
        ));
    }
    Ok(certs)
}

/// The suites named in `--ciphers` (colon-separated; IANA names such as
/// `TLS13_AES_256_GCM_SHA384` / `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, or
/// their OpenSSL spellings). A name rustls does not implement is an error
/// listing what is available, never silently dropped.
fn select_ciphers(spec: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let all: &[SupportedCipherSuite] = provider::ALL_CIPHER_SUITES;
    let mut chosen = Vec::new();
    let mut unknown = Vec::new();
    for name in spec.split(':').map(str::trim).filter(|n| !n.is_empty()) {
        let wanted = openssl_to_iana(name).unwrap_or(name);
        match all.iter().find(|s| {
            let iana = s.suite().as_str().unwrap_or("");
            iana.eq_ignore_ascii_case(wanted)
                || iana.trim_start_matches("TLS13_") == wanted.trim_start_matches("TLS_")
        }) {
            Some(suite) => chosen.push(*suite),
            None => unknown.push(name.to_string()),
        }
    }
    if !unknown.is_empty() || chosen.is_empty() {
        let available: Vec<&str> = all.iter().filter_map(|s| s.suite().as_str()).collect();
        return Err(error(
            "ciphers",
            format!(
                "rustls cannot do {}; available: {}",
                if unknown.is_empty() {
                    "an empty list".to_string()
                } else {
                    unknown.join(", ")
                },
                available.join(", ")
            ),
        ));
    }
    Ok(chosen)
}

/// OpenSSL's names for the TLS 1.2 suites rustls implements.
fn openssl_to_iana(name: &str) -> Option<&'static str> {
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384" => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305" => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256" => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384" => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_map_to_rustls_suites() {
        let suites =
            select_ciphers("TLS13_AES_256_GCM_SHA384:ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        assert_eq!(suites.len(), 2);
        let message = select_ciphers("RC4-MD5:TLS13_AES_128_GCM_SHA256")
            .unwrap_err()
            .to_string();
        assert!(message.contains("RC4-MD5"), "{message}");
        assert!(message.contains("--ciphers"), "{message}");
    }
}
