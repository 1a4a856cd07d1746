//! Building the WSGI `environ` dictionary (PEP 3333) for one request.
//!
//! The constant part is built once per worker ([`BaseEnviron`]) and copied
//! for each request; only the request's own keys are set per call.

use std::net::SocketAddr;

use ferricorn_http::RequestLine;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

/// What the worker knows about one request, in the form the environ needs.
pub struct RequestInfo<'a, H> {
    /// Method, target (`RAW_URI`), raw path and query, and
    /// `SERVER_PROTOCOL`.
    pub line: RequestLine<'a>,
    /// Header (name, value) pairs as received, in order.
    pub headers: H,
    /// The client's address; `None` for unix sockets.
    pub remote: Option<SocketAddr>,
    /// `SERVER_NAME`.
    pub server_name: &'a str,
    /// `SERVER_PORT`.
    pub server_port: &'a str,
    /// `wsgi.url_scheme`: `http` or `https`.
    pub url_scheme: &'a str,
    /// The mount point (`SCRIPT_NAME`); stripped from the start of `PATH_INFO`.
    pub script_name: &'a str,
    /// Where to keep the environ once built, for an access log that reads
    /// it after the app (and its middleware) ran; `None` keeps nothing.
    pub keep: Option<&'a KeptEnviron>,
}

/// A request's environ kept past the app call, so the access log sees what
/// middleware put there (`%({REQUEST_ID}e)s`), as gunicorn's does.
#[derive(Default)]
pub struct KeptEnviron(std::sync::OnceLock<Py<PyDict>>);

impl KeptEnviron {
    /// The `str()` of each of `keys` in the environ, matched ignoring case
    /// (gunicorn lower-cases keys and atoms; of two keys that differ only
    /// in case, the later wins); `None` when absent or when the app never
    /// got an environ. Releases the environ.
    pub fn into_values(self, keys: &[String]) -> Vec<Option<String>> {
        let mut values = vec![None; keys.len()];
        let Some(environ) = self.0.into_inner() else {
            return values;
        };
        Python::attach(|py| {
            for (key, value) in environ.bind(py).iter() {
                let Ok(key) = key.str() else { continue };
                let key = key.to_string_lossy().to_lowercase();
                if let Some(index) = keys.iter().position(|k| *k == key) {
                    values[index] = value.str().ok().map(|v| v.to_string_lossy().into_owned());
                }
            }
            drop(environ);
        });
        values
    }
}

/// Headers common enough that their environ keys are created once per
/// worker instead of once per request.
const COMMON_HEADERS: [&str; 22] = [
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "content-type",
    "content-length",
    "cookie",
    "referer",
    "origin",
    "authorization",
    "cache-control",
    "pragma",
    "if-none-match",
    "if-modified-since",
    "upgrade-insecure-requests",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

/// The keys every request shares, built once per worker.
pub struct BaseEnviron {
    dict: Py<PyDict>,
    /// Environ keys of [`COMMON_HEADERS`], in the same order.
    common_keys: Vec<Py<PyString>>,
}

impl BaseEnviron {
    /// Builds the shared keys. `errors` becomes `wsgi.errors`,
    /// `file_wrapper` becomes `wsgi.file_wrapper`.
    pub fn new(
        py: Python<'_>,
        multithread: bool,
        multiprocess: bool,
        errors: Bound<'_, PyAny>,
        file_wrapper: Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let dict = PyDict::new(py);
        dict.set_item("wsgi.version", (1, 0))?;
        dict.set_item("wsgi.multithread", multithread)?;
        dict.set_item("wsgi.multiprocess", multiprocess)?;
        dict.set_item("wsgi.run_once", false)?;
        // The body reader ends at the end of the body whatever its framing
        // (PEP 3333 extension, as gunicorn sets it): without this, Werkzeug
        // reads by CONTENT_LENGTH and sees a chunked upload as empty.
        dict.set_item("wsgi.input_terminated", true)?;
        dict.set_item("wsgi.errors", errors)?;
        dict.set_item("wsgi.file_wrapper", file_wrapper)?;
        dict.set_item(
            "SERVER_SOFTWARE",
            concat!("ferricorn/", env!("CARGO_PKG_VERSION")),
        )?;
        let mut key = String::new();
        let common_keys = COMMON_HEADERS
            .iter()
            .map(|name| {
                environ_key(name, &mut key);
                PyString::intern(py, &key).unbind()
            })
            .collect();
        Ok(Self {
            dict: dict.unbind(),
            common_keys,
        })
    }

    /// The environ key for header `name`, shared when the header is common.
    fn header_key<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        scratch: &mut String,
    ) -> Bound<'py, PyString> {
        let common = COMMON_HEADERS
            .iter()
            .position(|common| common.eq_ignore_ascii_case(name));
        match common.and_then(|index| self.common_keys.get(index)) {
            Some(key) => key.bind(py).clone(),
            None => {
                environ_key(name, scratch);
                PyString::new(py, scratch)
            }
        }
    }

    /// A fresh environ for one request: the shared keys plus the request's.
    pub fn build<'py, 'a, H>(
        &self,
        py: Python<'py>,
        request: RequestInfo<'a, H>,
        input: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>>
    where
        H: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let env = self.dict.bind(py).copy()?;
        if let Some(keep) = request.keep {
            let _ = keep.0.set(env.clone().unbind());
        }
        env.set_item(pyo3::intern!(py, "wsgi.input"), input)?;
        env.set_item(pyo3::intern!(py, "wsgi.url_scheme"), request.url_scheme)?;
        let line = request.line;
        env.set_item(pyo3::intern!(py, "REQUEST_METHOD"), line.method)?;
        env.set_item(pyo3::intern!(py, "SERVER_PROTOCOL"), line.version)?;
        env.set_item(pyo3::intern!(py, "SERVER_NAME"), request.server_name)?;
        env.set_item(pyo3::intern!(py, "SERVER_PORT"), request.server_port)?;
        env.set_item(pyo3::intern!(py, "QUERY_STRING"), latin1(py, line.query))?;
        env.set_item(pyo3::intern!(py, "RAW_URI"), latin1(py, line.target))?;

        let decoded = percent_decode(line.path);
        let script = request.script_name.as_bytes();
        let path_info = if !script.is_empty() && decoded.starts_with(script) {
            &decoded[script.len()..]
        } else {
            &decoded[..]
        };
        env.set_item(pyo3::intern!(py, "SCRIPT_NAME"), request.script_name)?;
        env.set_item(pyo3::intern!(py, "PATH_INFO"), latin1(py, path_info))?;

        match request.remote {
            Some(addr) => {
                env.set_item(pyo3::intern!(py, "REMOTE_ADDR"), addr.ip().to_string())?;
                env.set_item(pyo3::intern!(py, "REMOTE_PORT"), addr.port().to_string())?;
            }
            None => {
                env.set_item(pyo3::intern!(py, "REMOTE_ADDR"), "")?;
            }
        }

        let mut scratch = String::with_capacity(64);
        for (name, value) in request.headers {
            let key = self.header_key(py, name, &mut scratch);
            let value = latin1(py, value);
            match env.get_item(&key)? {
                // Repeated headers are joined with "," as gunicorn does.
                Some(previous) => {
                    let joined = format!("{},{}", previous.extract::<String>()?, value.to_str()?);
                    env.set_item(key, joined)?;
                }
                None => env.set_item(key, value)?,
            }
        }
        Ok(env)
    }
}

/// The environ key for a header: `CONTENT_TYPE`, `CONTENT_LENGTH`, or
/// `HTTP_` + the upper-cased name with `-` turned into `_`.
pub fn environ_key(name: &str, key: &mut String) {
    key.clear();
    if !name.eq_ignore_ascii_case("content-type") && !name.eq_ignore_ascii_case("content-length") {
        key.push_str("HTTP_");
    }
    key.extend(name.chars().map(|c| match c {
        '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
}

/// A `str` holding each byte as one code point (ISO-8859-1), as PEP 3333
/// requires for native strings built from raw request bytes.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        // ASCII is valid UTF-8 and the same code points in latin-1.
        if let Ok(text) = std::str::from_utf8(bytes) {
            return PyString::new(py, text);
        }
    }
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    PyString::new(py, &text)
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn percent_decode(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if byte == b'%' && i + 2 < raw.len() {
            if let (Some(hi), Some(lo)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(byte);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_keys_follow_cgi_rules() {
        let mut key = String::new();
        environ_key("Content-Type", &mut key);
        assert_eq!(key, "CONTENT_TYPE");
        environ_key("content-length", &mut key);
        assert_eq!(key, "CONTENT_LENGTH");
        environ_key("X-Forwarded-For", &mut key);
        assert_eq!(key, "HTTP_X_FORWARDED_FOR");
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(&*percent_decode(b"/a%20b"), b"/a b");
        assert_eq!(&*percent_decode(b"/%e2%82%ac"), "/€".as_bytes());
        assert_eq!(&*percent_decode(b"/100%"), b"/100%");
        assert_eq!(&*percent_decode(b"/%zz%4"), b"/%zz%4");
        assert_eq!(&*percent_decode(b"%41"), b"A");
    }
}
