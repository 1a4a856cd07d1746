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

    /// `wsgi.url_scheme`, as gunicorn 27 decides it: `https` on TLS
    /// connections, else `http`; then, from a trusted peer, each configured
    /// secure-scheme header present sets `https` when its value is exactly
    /// the configured one and `http` otherwise. Two such headers that
    /// disagree (`X-Forwarded-Proto: https` with `X-Forwarded-Ssl: off`)
    /// are refused with gunicorn's 400 "Contradictory scheme headers": no
    /// answer would be safe to pass on to the app.
    pub fn url_scheme(
        &self,
        headers: &[(String, Vec<u8>)],
        trusted: bool,
        secure: bool,
    ) -> Result<&'static str, HttpError> {
        let mut scheme = if secure { "https" } else { "http" };
        if !trusted {
            return Ok(scheme);
        }
        let mut decided = false;
        for (name, value) in headers {
            let Some((_, expected)) = self
                .secure_scheme_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            else {
                continue;
            };
            let said = if value.as_slice() == expected.as_bytes() {
                "https"
            } else {
                "http"
            };
            if decided && said != scheme {
                return Err(HttpError::bad_request("Contradictory scheme headers"));
            }
            decided = true;
            scheme = said;
        }
        Ok(scheme)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RequestPolicy {
        RequestPolicy {
            forwarded_allow_ips: AllowList::default(),
            secure_scheme_headers: vec![
                ("X-FORWARDED-PROTOCOL".into(), "ssl".into()),
                ("X-FORWARDED-PROTO".into(), "https".into()),
                ("X-FORWARDED-SSL".into(), "on".into()),
            ],
            forwarder_headers: Vec::new(),
            header_map: HeaderMap::Drop,
            script_name: String::new(),
        }
    }

    fn scheme(headers: &[(&str, &str)], trusted: bool, secure: bool) -> Result<&'static str, u16> {
        let headers: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        policy()
            .url_scheme(&headers, trusted, secure)
            .map_err(|e| e.status)
    }

    #[test]
    fn secure_scheme_headers_follow_gunicorn() {
        assert_eq!(scheme(&[], true, false), Ok("http"));
        assert_eq!(scheme(&[], true, true), Ok("https"));
        assert_eq!(
            scheme(&[("X-Forwarded-Proto", "https")], true, false),
            Ok("https")
        );
        // Values compare exactly, as in gunicorn.
        assert_eq!(
            scheme(&[("X-Forwarded-Proto", "HTTPS")], true, false),
            Ok("http")
        );
        assert_eq!(
            scheme(&[("x-forwarded-ssl", "on")], true, false),
            Ok("https")
        );
        assert_eq!(
            scheme(&[("X-Forwarded-Protocol", "ssl")], true, false),
            Ok("https")
        );
        // A trusted proxy may say plain http on a TLS connection.
        assert_eq!(
            scheme(&[("X-Forwarded-Proto", "http")], true, true),
            Ok("http")
        );
        let agree = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on")];
        assert_eq!(scheme(&agree, true, false), Ok("https"));
        let agree_plain = [("X-Forwarded-Proto", "http"), ("X-Forwarded-Ssl", "off")];
        assert_eq!(scheme(&agree_plain, true, false), Ok("http"));
        let repeated = [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Proto", "https"),
        ];
        assert_eq!(scheme(&repeated, true, false), Ok("https"));
    }

    #[test]
    fn contradictory_scheme_headers_are_refused_from_trusted_peers_only() {
        let contradictory = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")];
        assert_eq!(scheme(&contradictory, true, false), Err(400));
        let repeated = [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Proto", "http"),
        ];
        assert_eq!(scheme(&repeated, true, false), Err(400));
        // Untrusted peers' scheme headers are ignored, contradictions too.
        assert_eq!(scheme(&contradictory, false, false), Ok("http"));
        assert_eq!(scheme(&contradictory, false, true), Ok("https"));
    }
}
