//! The ASGI `tls` extension's data, read from a finished rustls handshake.

use ferricorn_python::asgi::scope::TlsInfo;

use crate::io::AsyncStream;

/// The TLS parameters of `stream`, or `None` when it is not TLS.
pub(crate) fn of(stream: &AsyncStream) -> Option<TlsInfo> {
    let AsyncStream::Tls(tls) = stream else {
        return None;
    };
    let (_, conn) = tls.get_ref();
    let client_cert_chain = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|cert| pem(cert.as_ref()))
        .collect();
    Some(TlsInfo {
        // rustls does not hand back the certificate it presented; the
        // extension allows None here.
        server_cert: None,
        client_cert_chain,
        tls_version: conn.protocol_version().map(u16::from),
        cipher_suite: conn.negotiated_cipher_suite().map(|s| u16::from(s.suite())),
    })
}

/// A DER certificate as PEM (`-----BEGIN CERTIFICATE-----`, 64-column base64).
fn pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            b64.push(if i <= chunk.len() {
                ALPHABET[((n >> shift) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::pem;

    #[test]
    fn pem_pads_and_wraps() {
        assert_eq!(
            pem(b"ab"),
            "-----BEGIN CERTIFICATE-----\nYWI=\n-----END CERTIFICATE-----\n"
        );
        let long = pem(&[0u8; 60]);
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2], "AAAAAAAAAAAAAAAA");
    }
}
