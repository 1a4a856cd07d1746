//! The ASGI `http` connection scope, built on the loop thread from plain
//! data the I/O thread collected.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::environ::percent_decode;

/// The `spec_version` advertised: 2.4, `send()` after a disconnect raises.
pub const SPEC_VERSION: &str = "2.4";

/// Everything an `http` scope is made of, without Python objects (built
/// on the I/O thread, which never takes the GIL).
#[derive(Debug, Clone)]
pub struct ScopeData {
    /// `"1.0"`, `"1.1"` or `"2"`.
    pub http_version: &'static str,
    /// The method, as parsed.
    pub method: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The path as sent, still percent-encoded, without the query.
    pub raw_path: Vec<u8>,
    /// The query string, still percent-encoded.
    pub query: Vec<u8>,
    /// Header fields in order (names lower-cased here).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The client's address.
    pub client: Option<(String, u16)>,
    /// The server's address.
    pub server: Option<(String, u16)>,
    /// For a WebSocket scope: the subprotocols the client offered.
    pub websocket: Option<Vec<String>>,
    /// The extensions usable on this request.
    pub extensions: Extensions,
}

/// Which ASGI extensions a request's connection can carry out; each is
/// advertised in `scope["extensions"]` only when set.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    /// `http.response.trailers` (HTTP/2, or HTTP/1.1 chunked with `TE: trailers`).
    pub trailers: bool,
    /// `http.response.pathsend`.
    pub pathsend: bool,
    /// `http.response.informational` and `http.response.early_hint` (1xx
    /// before the head; HTTP/1.1 only: hyper's HTTP/2 server sends none).
    pub informational: bool,
    /// `tls`: the connection's TLS parameters.
    pub tls: Option<TlsInfo>,
}

/// The ASGI TLS extension's data.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The server's certificate, PEM.
    pub server_cert: Option<String>,
    /// The client's certificate chain, PEM each, leaf first.
    pub client_cert_chain: Vec<String>,
    /// The TLS version (0x0304 for TLS 1.3).
    pub tls_version: Option<u16>,
    /// The IANA cipher suite number.
    pub cipher_suite: Option<u16>,
}

impl TlsInfo {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let tls = PyDict::new(py);
        tls.set_item("server_cert", self.server_cert.clone())?;
        tls.set_item("client_cert_chain", self.client_cert_chain.clone())?;
        // Subject-name parsing and verification errors are not surfaced
        // (the client was verified by rustls or not asked for).
        tls.set_item("client_cert_name", py.None())?;
        tls.set_item(
            "client_cert_error",
            if self.client_cert_chain.is_empty() {
                None
            } else {
                Some(py.None())
            },
        )?;
        tls.set_item("tls_version", self.tls_version)?;
        tls.set_item("cipher_suite", self.cipher_suite)?;
        Ok(tls)
    }
}

impl ScopeData {
    /// The scope dict; `root_path` is also prefixed into `path` and
    /// `raw_path`, as uvicorn does (the spec's reading).
    ///
    /// Made per request on the loop thread, so the constant parts are made
    /// once: the keys are interned, an `http` scope starts as a copy of a
    /// template that has all its keys (no resizing while filling it), and
    /// common header names are shared `bytes` objects.
    pub fn to_dict<'py>(&self, py: Python<'py>, root_path: &str) -> PyResult<Bound<'py, PyDict>> {
        let scope = match &self.websocket {
            Some(subprotocols) => {
                let scope = PyDict::new(py);
                scope.set_item(intern!(py, "type"), intern!(py, "websocket"))?;
                scope.set_item(intern!(py, "subprotocols"), subprotocols.clone())?;
                let scheme = if self.scheme == "https" {
                    intern!(py, "wss")
                } else {
                    intern!(py, "ws")
                };
                scope.set_item(intern!(py, "scheme"), scheme)?;
                scope
            }
            None => {
                let scope = HTTP_TEMPLATE
                    .get_or_try_init(py, || http_template(py).map(Bound::unbind))?
                    .bind(py)
                    .copy()?;
                scope.set_item(intern!(py, "method"), method(py, &self.method))?;
                let scheme = if self.scheme == "https" {
                    intern!(py, "https")
                } else {
                    intern!(py, "http")
                };
                scope.set_item(intern!(py, "scheme"), scheme)?;
                scope
            }
        };
        let asgi = ASGI_TEMPLATE
            .get_or_try_init(py, || asgi_template(py).map(Bound::unbind))?
            .bind(py)
            .copy()?;
        scope.set_item(intern!(py, "asgi"), asgi)?;
        let version = match self.http_version {
            "1.1" => intern!(py, "1.1"),
            "1.0" => intern!(py, "1.0"),
            "2" => intern!(py, "2"),
            other => &PyString::new(py, other),
        };
        scope.set_item(intern!(py, "http_version"), version)?;
        let decoded = percent_decode(&self.raw_path);
        let mut path = String::with_capacity(root_path.len() + decoded.len());
        path.push_str(root_path);
        path.push_str(&String::from_utf8_lossy(&decoded));
        scope.set_item(intern!(py, "path"), path)?;
        let raw_path = if root_path.is_empty() {
            PyBytes::new(py, &self.raw_path)
        } else {
            let mut raw = Vec::with_capacity(root_path.len() + self.raw_path.len());
            raw.extend_from_slice(root_path.as_bytes());
            raw.extend_from_slice(&self.raw_path);
            PyBytes::new(py, &raw)
        };
        scope.set_item(intern!(py, "raw_path"), raw_path)?;
        scope.set_item(intern!(py, "query_string"), PyBytes::new(py, &self.query))?;
        scope.set_item(intern!(py, "root_path"), root_path)?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers.push(PyTuple::new(
                py,
                [header_name(py, name), PyBytes::new(py, value)],
            )?);
        }
        scope.set_item(intern!(py, "headers"), PyList::new(py, headers)?)?;
        scope.set_item(intern!(py, "client"), self.client.clone())?;
        scope.set_item(intern!(py, "server"), self.server.clone())?;
        let extensions = PyDict::new(py);
        let offers = &self.extensions;
        if self.websocket.is_some() {
            extensions.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
        } else {
            if offers.trailers {
                extensions.set_item(intern!(py, "http.response.trailers"), PyDict::new(py))?;
            }
            if offers.pathsend {
                extensions.set_item(intern!(py, "http.response.pathsend"), PyDict::new(py))?;
            }
            if offers.informational {
                extensions.set_item(intern!(py, "http.response.informational"), PyDict::new(py))?;
                extensions.set_item(intern!(py, "http.response.early_hint"), PyDict::new(py))?;
            }
        }
        if let Some(tls) = &offers.tls {
            extensions.set_item(intern!(py, "tls"), tls.to_dict(py)?)?;
        }
        scope.set_item(intern!(py, "extensions"), extensions)?;
        Ok(scope)
    }
}

/// An `http` scope with every key (in the order scopes always had), to be
/// copied and filled in.
static HTTP_TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
/// `scope["asgi"]`, copied per request (an app may change its copy).
static ASGI_TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn http_template(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let template = PyDict::new(py);
    template.set_item(intern!(py, "type"), intern!(py, "http"))?;
    for key in [
        intern!(py, "method"),
        intern!(py, "scheme"),
        intern!(py, "asgi"),
        intern!(py, "http_version"),
        intern!(py, "path"),
        intern!(py, "raw_path"),
        intern!(py, "query_string"),
        intern!(py, "root_path"),
        intern!(py, "headers"),
        intern!(py, "client"),
        intern!(py, "server"),
        intern!(py, "extensions"),
    ] {
        template.set_item(key, py.None())?;
    }
    Ok(template)
}

fn asgi_template(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), SPEC_VERSION)?;
    Ok(asgi)
}

/// The method as a string, interned for the common ones.
fn method<'py>(py: Python<'py>, method: &str) -> Bound<'py, PyString> {
    let common = match method {
        "GET" => intern!(py, "GET"),
        "POST" => intern!(py, "POST"),
        "HEAD" => intern!(py, "HEAD"),
        "PUT" => intern!(py, "PUT"),
        "DELETE" => intern!(py, "DELETE"),
        "PATCH" => intern!(py, "PATCH"),
        "OPTIONS" => intern!(py, "OPTIONS"),
        _ => return PyString::new(py, method),
    };
    common.clone()
}

/// Lower-case request header names most clients send; their `bytes` are
/// made once and shared (bytes are immutable).
const COMMON_NAMES: [&str; 24] = [
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "authorization",
    "cache-control",
    "origin",
    "referer",
    "te",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
    "if-none-match",
    "if-modified-since",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];
static NAMES: PyOnceLock<Vec<Py<PyBytes>>> = PyOnceLock::new();

/// A header name as lower-case `bytes`.
fn header_name<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyBytes> {
    let names = NAMES.get_or_init(py, || {
        COMMON_NAMES
            .iter()
            .map(|n| PyBytes::new(py, n.as_bytes()).unbind())
            .collect()
    });
    match COMMON_NAMES
        .iter()
        .position(|common| common.eq_ignore_ascii_case(name))
    {
        Some(i) => names[i].bind(py).clone(),
        None => PyBytes::new(py, name.to_ascii_lowercase().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_path_is_prefixed_and_path_decoded() {
        Python::initialize();
        Python::attach(|py| {
            let data = ScopeData {
                http_version: "1.1",
                method: "GET".into(),
                scheme: "http",
                raw_path: b"/a%20b/%C3%A9".to_vec(),
                query: b"x=%20".to_vec(),
                headers: vec![
                    ("X-Thing".into(), b"v".to_vec()),
                    ("Host".into(), b"h".to_vec()),
                ],
                client: Some(("127.0.0.1".into(), 5000)),
                server: None,
                websocket: None,
                extensions: Extensions::default(),
            };
            let scope = data.to_dict(py, "/mnt").unwrap();
            let get = |k: &str| scope.get_item(k).unwrap().unwrap();
            assert_eq!(get("path").extract::<String>().unwrap(), "/mnt/a b/\u{e9}");
            assert_eq!(
                get("raw_path").extract::<Vec<u8>>().unwrap(),
                b"/mnt/a%20b/%C3%A9"
            );
            assert_eq!(get("query_string").extract::<Vec<u8>>().unwrap(), b"x=%20");
            let headers: Vec<(Vec<u8>, Vec<u8>)> = get("headers").extract().unwrap();
            assert_eq!(
                headers,
                vec![
                    (b"x-thing".to_vec(), b"v".to_vec()),
                    (b"host".to_vec(), b"h".to_vec())
                ]
            );
            let client: (String, u16) = get("client").extract().unwrap();
            assert_eq!(client.1, 5000);
            assert_eq!(get("method").extract::<String>().unwrap(), "GET");
            assert_eq!(get("type").extract::<String>().unwrap(), "http");

            // Every request gets its own dicts (an app may change them).
            let again = data.to_dict(py, "").unwrap();
            again.set_item("type", "changed").unwrap();
            let asgi = again.get_item("asgi").unwrap().unwrap();
            asgi.set_item("version", "changed").unwrap();
            let third = data.to_dict(py, "").unwrap();
            assert_eq!(
                third
                    .get_item("type")
                    .unwrap()
                    .unwrap()
                    .extract::<String>()
                    .unwrap(),
                "http"
            );
            let version = third
                .get_item("asgi")
                .unwrap()
                .unwrap()
                .get_item("version")
                .unwrap();
            assert_eq!(version.extract::<String>().unwrap(), "3.0");
            assert_eq!(
                third
                    .get_item("raw_path")
                    .unwrap()
                    .unwrap()
                    .extract::<Vec<u8>>()
                    .unwrap(),
                b"/a%20b/%C3%A9"
            );
        });
    }
}
