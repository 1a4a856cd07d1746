//! The response side of WSGI: `start_response`, the `write()` callable,
//! `wsgi.errors` and `wsgi.file_wrapper`.
//!
//! Status and headers are validated when the app calls `start_response`, so
//! a bad one raises inside the app (and becomes a 500) instead of reaching
//! the client. Nothing is sent until the first non-empty body chunk, a
//! `write()` call, or the end of the response, as PEP 3333 requires.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use ferricorn_http::response::{
    is_hop_by_hop, is_latin1, is_valid_header_name, is_valid_header_value,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

/// Where the response goes: implemented by the worker, which owns the
/// connection and the HTTP framing.
pub trait ResponseSink: Send {
    /// Sends the status line and `headers`, then `body` (possibly empty).
    /// `complete` is true when `body` is the whole response body, which lets
    /// the sink frame it with a `Content-Length` in one write.
    fn send_head(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
        body: &[u8],
        complete: bool,
    ) -> io::Result<()>;
    /// Sends more of the body.
    fn send_body(&mut self, data: &[u8]) -> io::Result<()>;
    /// Sends `count` bytes of the open file `fd` from `offset` without
    /// copying through user space. `Ok(false)` asks the caller to fall back
    /// to reading the file and calling [`ResponseSink::send_body`].
    fn send_file(&mut self, fd: RawFd, offset: u64, count: u64) -> io::Result<bool>;
    /// Ends the response (the last chunk of a chunked body, a flush).
    fn finish(&mut self) -> io::Result<()>;
    /// Whether the connection can carry another request after this
    /// response (false when the body is delimited by closing it).
    fn keeps_connection(&self) -> bool {
        true
    }

    /// Sends an interim (1xx) response, such as `103 Early Hints`, before
    /// the head. The default does nothing: a transport that cannot send
    /// one (HTTP/1.0, hyper's HTTP/2) drops it, as hints are optional.
    fn send_informational(
        &mut self,
        _status: u16,
        _reason: &str,
        _headers: &[(String, String)],
    ) -> io::Result<()> {
        Ok(())
    }

    /// The app asked for the connection to close (`Connection: close`):
    /// the head about to be sent must say so. Called before
    /// [`ResponseSink::send_head`].
    fn close_connection(&mut self) {}

    /// Whether a small write may wait (on a slow client, a full channel).
    /// The bridge keeps the GIL across writes that cannot.
    fn may_block(&self) -> bool {
        true
    }

    /// Whether the sink's buffer has room for more of the body. An
    /// iterable response is suspended when it has not (see
    /// [`crate::wsgi::Suspended`]), and resumed once the client has read.
    fn wants_more(&self) -> bool {
        true
    }

    /// Waits, up to the sink's own bound, until its buffer has room again:
    /// for the `write()` callable, which cannot be suspended. Called
    /// without the GIL.
    fn wait_for_room(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes up to this size keep the GIL when the sink says it will not
/// wait: releasing and retaking the GIL would cost two lock hand-offs per
/// request for a write that takes microseconds.
const UNRELEASED_WRITE: usize = 64 * 1024;

/// A response being produced, shared by the driver, `start_response` and
/// `write()`.
pub(crate) struct ResponseState {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub started: bool,
    pub head_sent: bool,
    pub content_length: Option<u64>,
    pub bytes_sent: u64,
    pub app_asked_close: bool,
    pub sink: Box<dyn ResponseSink>,
    /// Set once the client went away; later writes are skipped.
    pub broken: Option<io::Error>,
}

pub(crate) type SharedResponse = Arc<Mutex<ResponseState>>;

pub(crate) fn lock(shared: &SharedResponse) -> PyResult<MutexGuard<'_, ResponseState>> {
    shared
        .lock()
        .map_err(|_| PyRuntimeError::new_err("response state poisoned"))
}

impl ResponseState {
    pub fn new(sink: Box<dyn ResponseSink>) -> Self {
        Self {
            status: 0,
            reason: String::new(),
            headers: Vec::new(),
            started: false,
            head_sent: false,
            content_length: None,
            bytes_sent: 0,
            app_asked_close: false,
            sink,
            broken: None,
        }
    }

    /// Sends `data` as body bytes, sending the head first if needed.
    /// Never sends more than a declared `Content-Length`.
    pub fn write(&mut self, py: Python<'_>, data: &[u8], complete: bool) -> PyResult<()> {
        if !self.started {
            return Err(PyRuntimeError::new_err(
                "the app wrote body data before calling start_response()",
            ));
        }
        if self.broken.is_some() {
            return Ok(());
        }
        let data = match self.content_length {
            Some(limit) => {
                let room = limit.saturating_sub(self.bytes_sent);
                &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))]
            }
            None => data,
        };
        let sink = &mut self.sink;
        // Releasing and retaking the GIL costs more than a small write to
        // a socket; only writes that may wait on the client let it go.
        let release = data.len() > UNRELEASED_WRITE || sink.may_block();
        let result = if self.head_sent {
            if data.is_empty() {
                return Ok(());
            }
            if release {
                py.detach(|| sink.send_body(data))
            } else {
                sink.send_body(data)
            }
        } else {
            self.head_sent = true;
            if self.app_asked_close {
                sink.close_connection();
            }
            let (status, reason, headers) = (self.status, &self.reason, &self.headers);
            if release {
                py.detach(|| sink.send_head(status, reason, headers, data, complete))
            } else {
                sink.send_head(status, reason, headers, data, complete)
            }
        };
        match result {
            Ok(()) => self.bytes_sent += data.len() as u64,
            Err(error) => self.broken = Some(error),
        }
        Ok(())
    }
}

/// The `start_response` callable handed to the app.
#[pyclass(module = "ferricorn", name = "StartResponse")]
pub struct StartResponse {
    pub(crate) shared: SharedResponse,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let mut state = lock(&self.shared)?;
        let exc_info = exc_info.filter(|e| !e.is_none());
        if let Some(exc_info) = exc_info {
            if state.head_sent {
                // PEP 3333: too late to change the response; re-raise.
                let tuple = exc_info.cast::<PyTuple>()?;
                return Err(PyErr::from_value(tuple.get_item(1)?));
            }
        } else if state.started {
            return Err(PyRuntimeError::new_err(
                "start_response() called a second time without exc_info",
            ));
        }
        let (code, reason) = parse_status(status)?;
        let mut parsed = Vec::new();
        let mut content_length = None;
        let mut asked_close = false;
        for item in headers.try_iter()? {
            let item = item?;
            let pair = item
                .cast::<PyTuple>()
                .map_err(|_| PyTypeError::new_err(format!("header {item} is not a tuple")))?;
            if pair.len() != 2 {
                return Err(PyTypeError::new_err(format!(
                    "header {pair} is not a (name, value) pair"
                )));
            }
            let name = header_str(&pair.get_item(0)?, "name")?;
            let value = header_str(&pair.get_item(1)?, "value")?;
            let value = checked_header(&name, &value)?;
            if name.eq_ignore_ascii_case("content-length") {
                let length = value
                    .parse::<u64>()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        PyValueError::new_err(format!("invalid Content-Length {value:?}"))
                    })?;
                content_length = Some(length);
            }
            if is_hop_by_hop(&name) {
                // The server owns connection management and framing.
                if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    asked_close = true;
                }
                tracing::debug!("dropped hop-by-hop header {name:?} from the app");
                continue;
            }
            parsed.push((name, value));
        }
        state.status = code;
        state.reason = reason;
        state.headers = parsed;
        state.content_length = content_length;
        state.app_asked_close = asked_close;
        state.started = true;
        drop(state);
        let _ = py;
        Ok(Write {
            shared: Arc::clone(&self.shared),
        })
    }
}

/// Validates a response header from the app; returns its value with
/// surrounding blanks removed (RFC 9110 §5.5), as gunicorn does.
fn checked_header(name: &str, value: &str) -> PyResult<String> {
    if !is_valid_header_name(name) {
        return Err(PyValueError::new_err(format!(
            "Invalid response header name from the application: {name:?}"
        )));
    }
    // PEP 3333: values are latin-1 strings. Like gunicorn, the message
    // names the header only: the value may be a secret.
    if !is_valid_header_value(value) || !is_latin1(value) {
        return Err(PyValueError::new_err(format!(
            "Invalid response header from the application: {name:?}"
        )));
    }
    Ok(value.trim_matches(|c| c == ' ' || c == '\t').to_string())
}

fn header_str(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    value
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("header {what} {value} must be str")))?
        .to_str()
        .map(str::to_owned)
}

/// Splits `"200 OK"` into its code and reason.
fn parse_status(status: &Bound<'_, PyAny>) -> PyResult<(u16, String)> {
    let text = status
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("status {status} must be str")))?
        .to_str()?;
    let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
    let valid_code = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    let code: u16 = code
        .parse()
        .ok()
        .filter(|c| valid_code && (100..=999).contains(c))
        .ok_or_else(|| PyValueError::new_err(format!("invalid status {text:?}")))?;
    // gunicorn's STATUS_RE: the reason is SP, HTAB, VCHAR or obs-text.
    let reason_char = |c: char| matches!(c, '\t' | ' '..='~' | '\u{80}'..='\u{ff}');
    if !reason.chars().all(reason_char) {
        return Err(PyValueError::new_err(format!("invalid status {text:?}")));
    }
    Ok((code, reason.to_string()))
}

/// The `write()` callable returned by `start_response`.
#[pyclass(module = "ferricorn", name = "Write")]
pub struct Write {
    shared: SharedResponse,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let mut state = lock(&self.shared)?;
        state.write(py, data.as_bytes(), false)?;
        if state.broken.is_none() && !state.sink.wants_more() {
            // write() cannot be suspended like an iterable: hold the app
            // until the client has taken enough (or the sink gives up).
            let sink = &mut state.sink;
            if let Err(error) = py.detach(|| sink.wait_for_room()) {
                state.broken = Some(error);
            }
        }
        match &state.broken {
            Some(error) => Err(pyo3::exceptions::PyOSError::new_err(format!(
                "client disconnected: {error}"
            ))),
            None => Ok(()),
        }
    }
}

/// `wsgi.early_hints` (gunicorn 25+): `early_hints([(name, value), ...])`
/// sends a `103 Early Hints` response with those headers before the real
/// one, so a browser can start preloading. Names and values are `str` or
/// latin-1 `bytes`, validated like `start_response`'s. Ignored once the
/// response head is out, for HTTP/1.0 clients, and on HTTP/2 (hyper's
/// server cannot send interim responses); may be called several times.
#[pyclass(module = "ferricorn", name = "EarlyHints")]
pub struct EarlyHints {
    pub(crate) shared: SharedResponse,
}

#[pymethods]
impl EarlyHints {
    fn __call__(&self, py: Python<'_>, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut parsed = Vec::new();
        for item in headers.try_iter()? {
            let item = item?;
            let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("header {item} is not a pair")))?;
            let name = hint_str(&name, "name")?;
            let value = hint_str(&value, "value")?;
            let value = checked_header(&name, &value)?;
            parsed.push((name, value));
        }
        let mut state = lock(&self.shared)?;
        if state.head_sent || state.broken.is_some() {
            return Ok(());
        }
        let sink = &mut state.sink;
        let result = if sink.may_block() {
            py.detach(|| sink.send_informational(103, "Early Hints", &parsed))
        } else {
            sink.send_informational(103, "Early Hints", &parsed)
        };
        if let Err(error) = result {
            let message = format!("client disconnected: {error}");
            state.broken = Some(error);
            return Err(pyo3::exceptions::PyOSError::new_err(message));
        }
        Ok(())
    }
}

/// A name or value given to `wsgi.early_hints`: `str`, or `bytes` read as
/// latin-1 (as gunicorn accepts both).
fn hint_str(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().iter().map(|&b| char::from(b)).collect());
    }
    header_str(value, what)
}

/// `wsgi.errors`: text written here goes to the error log.
#[pyclass(module = "ferricorn", name = "ErrorStream")]
pub struct ErrorStream;

#[pymethods]
impl ErrorStream {
    fn write(&self, text: &str) -> usize {
        let trimmed = text.trim_end_matches('\n');
        if !trimmed.is_empty() {
            tracing::error!(target: "wsgi.errors", "{trimmed}");
        }
        text.len()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(line?.extract::<&str>()?);
        }
        Ok(())
    }

    fn flush(&self) {}
}

/// `wsgi.file_wrapper`: wraps a file so the server can send it with
/// `sendfile` when it is a real file, and iterate it in blocks otherwise.
#[pyclass(module = "ferricorn", name = "FileWrapper")]
pub struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    pub(crate) blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr("close")? {
            filelike.call_method0("close")?;
        }
        Ok(())
    }
}
