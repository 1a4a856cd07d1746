//! The ASGI `http` connection scope, built on the loop thread from plain
//! data the I/O thread collected.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

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
    pub fn to_dict<'py>(&self, py: Python<'py>, root_path: &str) -> PyResult<Bound<'py, PyDict>> {
        let scope = PyDict::new(py);
        let asgi = PyDict::new(py);
        asgi.set_item("version", "3.0")?;
        asgi.set_item("spec_version", SPEC_VERSION)?;
        match &self.websocket {
            Some(subprotocols) => {
                scope.set_item("type", "websocket")?;
                scope.set_item("subprotocols", subprotocols.clone())?;
                let scheme = if self.scheme == "https" { "wss" } else { "ws" };
                scope.set_item("scheme", scheme)?;
            }
            None => {
                scope.set_item("type", "http")?;
                scope.set_item("method", &self.method)?;
                scope.set_item("scheme", self.scheme)?;
            }
        }
        scope.set_item("asgi", asgi)?;
        scope.set_item("http_version", self.http_version)?;
        let decoded = percent_decode(&self.raw_path);
        let mut path = String::with_capacity(root_path.len() + decoded.len());
        path.push_str(root_path);
        path.push_str(&String::from_utf8_lossy(&decoded));
        scope.set_item("path", path)?;
        let mut raw = Vec::with_capacity(root_path.len() + self.raw_path.len());
        raw.extend_from_slice(root_path.as_bytes());
        raw.extend_from_slice(&self.raw_path);
        scope.set_item("raw_path", PyBytes::new(py, &raw))?;
        scope.set_item("query_string", PyBytes::new(py, &self.query))?;
        scope.set_item("root_path", root_path)?;
        let headers = PyList::empty(py);
        for (name, value) in &self.headers {
            let name = name.to_ascii_lowercase();
            let pair = PyTuple::new(
                py,
                [PyBytes::new(py, name.as_bytes()), PyBytes::new(py, value)],
            )?;
            headers.append(pair)?;
        }
        scope.set_item("headers", headers)?;
        scope.set_item("client", self.client.clone())?;
        scope.set_item("server", self.server.clone())?;
        let extensions = PyDict::new(py);
        let offers = &self.extensions;
        if self.websocket.is_some() {
            extensions.set_item("websocket.http.response", PyDict::new(py))?;
        } else {
            if offers.trailers {
                extensions.set_item("http.response.trailers", PyDict::new(py))?;
            }
            if offers.pathsend {
                extensions.set_item("http.response.pathsend", PyDict::new(py))?;
            }
            if offers.informational {
                extensions.set_item("http.response.informational", PyDict::new(py))?;
                extensions.set_item("http.response.early_hint", PyDict::new(py))?;
            }
        }
        if let Some(tls) = &offers.tls {
            extensions.set_item("tls", tls.to_dict(py)?)?;
        }
        scope.set_item("extensions", extensions)?;
        Ok(scope)
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
                headers: vec![("X-Thing".into(), b"v".to_vec())],
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
            assert_eq!(headers, vec![(b"x-thing".to_vec(), b"v".to_vec())]);
            let client: (String, u16) = get("client").extract().unwrap();
            assert_eq!(client.1, 5000);
        });
    }
}
