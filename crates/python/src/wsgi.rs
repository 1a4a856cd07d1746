//! Calling a WSGI application for one request (PEP 3333).
//!
//! [`WsgiApp::call`] builds the environ, calls the app, sends what it
//! returns through the worker's [`ResponseSink`], and always calls the
//! result's `close()`. Errors never escape: they are logged with their
//! traceback and reported in the [`Outcome`], so the worker can answer 500
//! (when nothing was sent yet) or close the connection (when it was).

use std::io::Read;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::app::format_error;
use crate::environ::{BaseEnviron, RequestInfo};
use crate::input::Input;
use crate::response::{
    lock, EarlyHints, ErrorStream, FileWrapper, ResponseSink, ResponseState, SharedResponse,
    StartResponse,
};

/// How a request went, for the access log and connection management.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The status the app chose (0 if it never called `start_response`).
    pub status: u16,
    /// Body bytes handed to the sink.
    pub bytes_sent: u64,
    /// The response headers as sent (for `{name}o` access-log atoms).
    pub headers: Vec<(String, String)>,
    /// True once the status line went out.
    pub head_sent: bool,
    /// The app failed; if `head_sent` is false the worker should answer 500.
    pub failed: bool,
    /// The connection must not be reused (app asked, response incomplete,
    /// or the client went away).
    pub must_close: bool,
}

/// A loaded WSGI application and the per-worker environ template.
pub struct WsgiApp {
    app: Py<PyAny>,
    base: BaseEnviron,
}

impl WsgiApp {
    /// Wraps the application callable.
    pub fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        multithread: bool,
        multiprocess: bool,
    ) -> PyResult<Self> {
        let errors = Bound::new(py, ErrorStream)?.into_any();
        let file_wrapper = py.get_type::<FileWrapper>().into_any();
        let base = BaseEnviron::new(py, multithread, multiprocess, errors, file_wrapper)?;
        Ok(Self { app, base })
    }

    /// Runs the app for one request. `body` yields exactly the request body.
    pub fn call<'a, H>(
        &self,
        request: RequestInfo<'a, H>,
        body: Box<dyn Read + Send>,
        sink: Box<dyn ResponseSink>,
    ) -> Outcome
    where
        H: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let shared: SharedResponse = Arc::new(Mutex::new(ResponseState::new(sink)));
        let raw_uri = request.raw_uri;
        let result = Python::attach(|py| {
            let run = self.run(py, request, body, &shared);
            run.map_err(|error| {
                tracing::error!(
                    "Error handling request {}\n{}",
                    String::from_utf8_lossy(raw_uri),
                    format_error(py, &error)
                );
            })
        });
        let Ok(mut state) = shared.lock() else {
            return Outcome {
                failed: true,
                must_close: true,
                ..Outcome::default()
            };
        };
        if let Some(error) = &state.broken {
            let uri = String::from_utf8_lossy(raw_uri);
            tracing::debug!("client went away during {uri}: {error}");
        }
        let complete = state
            .content_length
            .is_none_or(|length| length == state.bytes_sent);
        Outcome {
            status: state.status,
            bytes_sent: state.bytes_sent,
            headers: std::mem::take(&mut state.headers),
            head_sent: state.head_sent,
            failed: result.is_err(),
            must_close: result.is_err()
                || state.broken.is_some()
                || state.app_asked_close
                || !state.sink.keeps_connection()
                || !complete,
        }
    }

    fn run<'a, H>(
        &self,
        py: Python<'_>,
        request: RequestInfo<'a, H>,
        body: Box<dyn Read + Send>,
        shared: &SharedResponse,
    ) -> PyResult<()>
    where
        H: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let input = Bound::new(py, Input::new(body))?.into_any();
        let environ = self.base.build(py, request, input)?;
        let early_hints = EarlyHints {
            shared: Arc::clone(shared),
        };
        environ.set_item(
            pyo3::intern!(py, "wsgi.early_hints"),
            Bound::new(py, early_hints)?,
        )?;
        let start_response = Bound::new(
            py,
            StartResponse {
                shared: Arc::clone(shared),
            },
        )?;
        let result = self.app.bind(py).call1((environ, start_response))?;
        let sent = send_result(py, &result, shared);
        // PEP 3333: close() is called whatever happened while iterating.
        // Plain lists and tuples (most responses) have none; skipping the
        // lookup spares raising and discarding an AttributeError.
        let plain =
            result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
        let closed = match result.getattr(pyo3::intern!(py, "close")) {
            _ if plain => Ok(()),
            Ok(close) => close.call0().map(drop),
            Err(_) => Ok(()),
        };
        sent.and(closed)?;
        let mut state = lock(shared)?;
        if !state.head_sent {
            if !state.started {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "the app returned without calling start_response()",
                ));
            }
            state.write(py, b"", true)?;
        }
        if state.broken.is_none() {
            let sink = &mut state.sink;
            let finished = if sink.may_block() {
                py.detach(|| sink.finish())
            } else {
                sink.finish()
            };
            if let Err(error) = finished {
                state.broken = Some(error);
            }
        }
        Ok(())
    }
}

/// Sends what the app returned: a one-item list in a single write, a
/// file wrapper by `sendfile`, anything else by iterating it.
fn send_result(py: Python<'_>, result: &Bound<'_, PyAny>, shared: &SharedResponse) -> PyResult<()> {
    if let Some(single) = single_bytes(result) {
        return lock(shared)?.write(py, single.as_bytes(), true);
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if send_file(py, &wrapper.borrow(), shared)? {
            return Ok(());
        }
    }
    for item in result.try_iter()? {
        let item = item?;
        let chunk = item.cast::<PyBytes>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "the app yielded {}, not bytes",
                item.get_type()
            ))
        })?;
        let mut state = lock(shared)?;
        if !chunk.as_bytes().is_empty() {
            state.write(py, chunk.as_bytes(), false)?;
        }
        if state.broken.is_some() {
            break;
        }
    }
    Ok(())
}

fn single_bytes<'py>(result: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
    let item = if let Ok(list) = result.cast::<PyList>() {
        (list.len() == 1).then(|| list.get_item(0).ok())??
    } else if let Ok(tuple) = result.cast::<PyTuple>() {
        (tuple.len() == 1).then(|| tuple.get_item(0).ok())??
    } else {
        return None;
    };
    item.cast_into::<PyBytes>().ok()
}

/// Sends a wrapped real file with `sendfile`. Returns false when the object
/// is not a real file, so the caller iterates it instead.
fn send_file(py: Python<'_>, wrapper: &FileWrapper, shared: &SharedResponse) -> PyResult<bool> {
    let file = wrapper.filelike.bind(py);
    let Some(fd) = file
        .call_method0("fileno")
        .ok()
        .and_then(|fd| fd.extract::<RawFd>().ok())
    else {
        return Ok(false);
    };
    let offset: u64 = match file.call_method0("tell").and_then(|p| p.extract()) {
        Ok(offset) => offset,
        Err(_) => return Ok(false),
    };
    let Some(size) = regular_file_size(fd) else {
        return Ok(false);
    };
    let mut state = lock(shared)?;
    let remaining = size.saturating_sub(offset);
    let count = state
        .content_length
        .map_or(remaining, |length| length.min(remaining));
    if !state.head_sent {
        if state.content_length.is_none() {
            // The length is known: let the sink frame it without chunking.
            let length = count.to_string();
            state.headers.push(("Content-Length".into(), length));
            state.content_length = Some(count);
        }
        state.write(py, b"", false)?;
    }
    if state.broken.is_some() || count == 0 {
        return Ok(true);
    }
    let sink = &mut state.sink;
    match py.detach(|| sink.send_file(fd, offset, count)) {
        Ok(true) => {
            state.bytes_sent += count;
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(error) => {
            state.broken = Some(error);
            Ok(true)
        }
    }
}

/// The size of `fd` if it is a regular file (only those can be `sendfile`d
/// with a known length).
fn regular_file_size(fd: RawFd) -> Option<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: FFI call; `stat` is only read after fstat reports success.
    let stat = unsafe {
        if libc::fstat(fd, stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    (stat.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| u64::try_from(stat.st_size).ok())?
}
