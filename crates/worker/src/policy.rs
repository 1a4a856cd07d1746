//! Per-request trust rules from the configuration: which headers an app
//! sees, and what a trusted front proxy may tell us (scheme, mount point).

use ferricorn_config::{AllowList, HeaderMap};
use ferricorn_http::{Header, HttpError};

/// The configuration's trust and header rules, prepared once per worker.
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    /// Peers whose `X-Forwarded-*`/secure-scheme headers are believed.
    pub forwarded_allow_ips: AllowList,
    /// (header, value) pairs that mark a request as HTTPS, upper-cased names.
    pub secure_scheme_headers: Vec<(String, String)>,
    /// Underscore headers a trusted proxy may set (`SCRIPT_NAME`, `PATH_INFO`).
    pub forwarder_headers: Vec<String>,
    /// What to do with other header names containing `_`.
    pub header_map: HeaderMap,
    /// `SCRIPT_NAME` from the environment, the default mount point.
    pub script_name: String,
}

impl RequestPolicy {
    /// Applies `header_map` to header names with `_`: such a name could
    /// otherwise pose as its dashed twin once mapped onto `HTTP_*` keys.
    /// Names listed in `forwarder_headers` pass from trusted peers.
    pub fn filter_headers(
        &self,
        headers: Vec<Header>,
        trusted: bool,
    ) -> Result<Vec<(String, Vec<u8>)>, HttpError> {
        let mut kept = Vec::with_capacity(headers.len());
        for Header { name, value } in headers {
            if name.contains('_') {
                let forwarded = trusted
                    && self
                        .forwarder_headers
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(&name));
                if !forwarded {
                    match self.header_map {
                        HeaderMap::Drop => continue,
                        HeaderMap::Refuse => {
                            return Err(HttpError::bad_request(format!(
                                "header name {name:?} contains an underscore"
                            )))
                        }
                        HeaderMap::Dangerous => {}
                    }
                }
            }
            kept.push((name, value));
        }
        Ok(kept)
    }

    /// `https` on TLS connections; otherwise `https` when a trusted peer
    /// sent one of the secure-scheme headers with its configured value.
    pub fn url_scheme(
        &self,
        headers: &[(String, Vec<u8>)],
        trusted: bool,
        secure: bool,
    ) -> &'static str {
        let base = if secure { "https" } else { "http" };
        if !trusted {
            return base;
        }
        let mut scheme = base;
        for (name, value) in headers {
            if let Some((_, expected)) = self
                .secure_scheme_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                scheme = if value.as_slice() == expected.as_bytes() {
                    "https"
                } else {
                    "http"
                };
            }
        }
        scheme
    }

    /// The mount point: a trusted proxy's `SCRIPT_NAME` header (when listed
    /// in `forwarder_headers`), else the environment's.
    pub fn script_name<'a>(
        &'a self,
        headers: &'a [(String, Vec<u8>)],
        trusted: bool,
    ) -> std::borrow::Cow<'a, str> {
        if trusted
            && self
                .forwarder_headers
                .iter()
                .any(|f| f.eq_ignore_ascii_case("SCRIPT_NAME"))
        {
            if let Some((_, value)) = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("SCRIPT_NAME"))
            {
                return String::from_utf8_lossy(value);
            }
        }
        std::borrow::Cow::Borrowed(&self.script_name)
    }
}
