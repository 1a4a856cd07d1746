//! Calling a WSGI application for one request (PEP 3333).
//!
//! [`WsgiApp::call`] builds the environ, calls the app, sends what it
//! returns through the worker's [`ResponseSink`], and always calls the
//! result's `close()`. An iterable response is pulled only as fast as the
//! sink drains: when it is full, the call returns [`Called::Suspended`]
//! and the worker resumes it later. Errors never escape: they are logged with their
//! traceback and reported in the [`Outcome`], so the worker can answer 500
//! (when nothing was sent yet) or close the connection (when it was).

use std::io::Read;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList, PyTuple};

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
    /// Returns [`Called::Suspended`] when the sink filled up while the app's
    /// iterable still has items: the caller resumes it once the client has
    /// read (see [`ResponseSink::wants_more`]).
    pub fn call<'a, H>(
        &self,
        request: RequestInfo<'a, H>,
        body: Box<dyn Read + Send>,
        sink: Box<dyn ResponseSink>,
    ) -> Called
    where
        H: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let shared: SharedResponse = Arc::new(Mutex::new(ResponseState::new(sink)));
        let raw_uri = request.line.target.to_vec();
        Python::attach(|py| {
            let step = self
                .start(py, request, body, &shared)
                .and_then(|result| drive(py, result, None, &shared));
            conclude(py, step, shared, raw_uri)
        })
    }

    fn start<'a, 'py, H>(
        &self,
        py: Python<'py>,
        request: RequestInfo<'a, H>,
        body: Box<dyn Read + Send>,
        shared: &SharedResponse,
    ) -> PyResult<Bound<'py, PyAny>>
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
        self.app.bind(py).call1((environ, start_response))
    }
}

/// How a call into the app went so far.
pub enum Called {
    /// The response is produced in full (buffered bytes may still be on
    /// their way to the client).
    Done(Outcome),
    /// The sink is full and the app's iterable has more.
    Suspended(Suspended),
}

/// An iterable response paused because the client has not read what was
/// produced: resumed with [`Suspended::resume`] as the buffer drains, or
/// ended with [`Suspended::abort`]. Either way the iterable's `close()` is
/// called exactly once.
pub struct Suspended {
    result: Py<PyAny>,
    iter: Py<PyIterator>,
    shared: SharedResponse,
    raw_uri: Vec<u8>,
}

impl Suspended {
    /// Pulls more of the response, until the sink is full again or the
    /// iterable is exhausted (then closes it and finishes the response).
    pub fn resume(self) -> Called {
        let Suspended {
            result,
            iter,
            shared,
            raw_uri,
        } = self;
        Python::attach(|py| {
            let step = drive(
                py,
                result.into_bound(py),
                Some(iter.into_bound(py)),
                &shared,
            );
            conclude(py, step, shared, raw_uri)
        })
    }

    /// Gives up on the response (the client stopped reading): closes the
    /// iterable and reports the exchange as broken.
    pub fn abort(self, why: std::io::Error) -> Outcome {
        let Suspended {
            result,
            iter,
            shared,
            raw_uri,
        } = self;
        if let Ok(mut state) = shared.lock() {
            state.broken.get_or_insert(why);
        }
        Python::attach(|py| {
            drop(iter);
            let result = result.into_bound(py);
            let step = close_result(py, &result).map(|()| None);
            match conclude(py, step, shared, raw_uri) {
                Called::Done(outcome) => outcome,
                Called::Suspended(_) => Outcome {
                    failed: true,
                    must_close: true,
                    ..Outcome::default()
                },
            }
        })
    }
}

/// The iterable and its iterator, when a response is suspended.
type Paused<'py> = Option<(Bound<'py, PyAny>, Bound<'py, PyIterator>)>;

/// Turns a step of the call into what the worker sees, logging a failure.
fn conclude(
    py: Python<'_>,
    step: PyResult<Paused<'_>>,
    shared: SharedResponse,
    raw_uri: Vec<u8>,
) -> Called {
    let result = match step {
        Ok(Some((result, iter))) => {
            return Called::Suspended(Suspended {
                result: result.unbind(),
                iter: iter.unbind(),
                shared,
                raw_uri,
            })
        }
        Ok(None) => Ok(()),
        Err(error) => {
            tracing::error!(
                "Error handling request {}\n{}",
                String::from_utf8_lossy(&raw_uri),
                format_error(py, &error)
            );
            Err(())
        }
    };
    let Ok(mut state) = shared.lock() else {
        return Called::Done(Outcome {
            failed: true,
            must_close: true,
            ..Outcome::default()
        });
    };
    if let Some(error) = &state.broken {
        let uri = String::from_utf8_lossy(&raw_uri);
        tracing::debug!("client went away during {uri}: {error}");
    }
    let complete = state
        .content_length
        .is_none_or(|length| length == state.bytes_sent);
    Called::Done(Outcome {
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
    })
}

/// Sends the app's `result` (continuing with `iter` when resumed); unless
/// the sink fills first, then closes it and ends the response.
fn drive<'py>(
    py: Python<'py>,
    result: Bound<'py, PyAny>,
    iter: Option<Bound<'py, PyIterator>>,
    shared: &SharedResponse,
) -> PyResult<Paused<'py>> {
    let sent = match send_result(py, &result, iter, shared) {
        Ok(Some(iter)) => return Ok(Some((result, iter))),
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    // PEP 3333: close() is called whatever happened while iterating.
    let closed = close_result(py, &result);
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
    Ok(None)
}

/// Calls the result's `close()`, if it has one.
fn close_result(py: Python<'_>, result: &Bound<'_, PyAny>) -> PyResult<()> {
    // Plain lists and tuples (most responses) have none; skipping the
    // lookup spares raising and discarding an AttributeError.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    match result.getattr(pyo3::intern!(py, "close")) {
        Ok(close) => close.call0().map(drop),
        Err(_) => Ok(()),
    }
}

/// Sends what the app returned: a one-item list in a single write, a
/// file wrapper by `sendfile`, anything else by iterating it.
/// Returns the iterator when the sink filled before the end.
fn send_result<'py>(
    py: Python<'py>,
    result: &Bound<'py, PyAny>,
    iter: Option<Bound<'py, PyIterator>>,
    shared: &SharedResponse,
) -> PyResult<Option<Bound<'py, PyIterator>>> {
    let iter = match iter {
        Some(iter) => iter,
        None => {
            if let Some(single) = single_bytes(result) {
                lock(shared)?.write(py, single.as_bytes(), true)?;
                return Ok(None);
            }
            if let Ok(wrapper) = result.cast::<FileWrapper>() {
                if send_file(py, &wrapper.borrow(), shared)? {
                    return Ok(None);
                }
            }
            result.try_iter()?
        }
    };
    for item in iter.clone() {
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
        if !state.sink.wants_more() {
            return Ok(Some(iter));
        }
    }
    Ok(None)
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
