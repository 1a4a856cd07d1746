//! The error type shared by every parser in the crate, carrying the HTTP
//! status the server should answer with.

/// A protocol error: the status code and reason to send back, plus detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}: {detail}")]
pub struct HttpError {
    /// HTTP status code to answer with (400, 414, 431, 501, 505...).
    pub status: u16,
    /// Canonical reason phrase for `status`.
    pub reason: &'static str,
    /// Human-readable description of what was wrong.
    pub detail: String,
}

impl HttpError {
    /// An error with an arbitrary status; the reason phrase is looked up.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        HttpError {
            status,
            reason: crate::response::reason_phrase(status),
            detail: detail.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, detail)
    }

    /// 414 URI Too Long (request line over `limit_request_line`).
    pub fn uri_too_long(detail: impl Into<String>) -> Self {
        Self::new(414, detail)
    }

    /// 431 Request Header Fields Too Large.
    pub fn header_fields_too_large(detail: impl Into<String>) -> Self {
        Self::new(431, detail)
    }

    /// 501 Not Implemented (e.g. an unsupported transfer coding).
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(501, detail)
    }

    /// 505 HTTP Version Not Supported.
    pub fn version_not_supported(detail: impl Into<String>) -> Self {
        Self::new(505, detail)
    }

    /// A complete HTTP/1.1 error response: status line, `Connection: close`,
    /// `Content-Type: text/plain`, `Content-Length` and a short body.
    pub fn to_response(&self) -> Vec<u8> {
        let body = format!("{}: {}\n", self.reason, self.detail);
        let mut out = Vec::with_capacity(128 + body.len());
        crate::response::write_status_line(
            &mut out,
            crate::Version::HTTP_11,
            self.status,
            self.reason,
        );
        crate::response::write_header(&mut out, "Connection", "close");
        crate::response::write_header(&mut out, "Content-Type", "text/plain; charset=utf-8");
        crate::response::write_header(&mut out, "Content-Length", &body.len().to_string());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        out
    }
}
