//! `wsgi.input`: the request body as a blocking, buffered file-like object.
//!
//! The worker hands over a [`Read`] that yields exactly the body (framing
//! already removed) and ends at its end, so the app can never read into the
//! next request. Reads release the GIL while they wait for the client.
//! A body that fails (bad framing, the client gone, a timeout) raises
//! `OSError` from every read: the readers keep failing, so an app cannot
//! mistake the failure for the end of the body.

use std::io::Read;
use std::sync::Mutex;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// How much is asked of the body reader at a time.
const FILL_SIZE: usize = 64 * 1024;

/// The request body reader behind `wsgi.input`.
#[pyclass(module = "ferricorn", name = "Input")]
pub struct Input {
    state: Mutex<Buffered>,
}

struct Buffered {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Buffered {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more from the body into the buffer; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + FILL_SIZE, 0);
        let reader = &mut self.reader;
        let target = &mut self.buf[start..];
        let read = py.detach(|| loop {
            match reader.read(target) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        });
        match read {
            Ok(n) => {
                self.buf.truncate(start + n);
                if n == 0 {
                    self.eof = true;
                }
                Ok(n > 0)
            }
            Err(error) => {
                self.buf.truncate(start);
                Err(PyOSError::new_err(format!(
                    "error reading the request body: {error}"
                )))
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.available().len());
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    fn read(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        if let Some(n) = limit.filter(|&n| n > FILL_SIZE) {
            return self.read_large(py, n);
        }
        loop {
            let have = self.available().len();
            if limit.is_some_and(|n| have >= n) || !self.fill(py)? {
                return Ok(self.take(limit.unwrap_or(usize::MAX)));
            }
        }
    }

    /// `read(n)` for a large `n` (typically the whole `CONTENT_LENGTH`):
    /// straight into one buffer of the right size, without staging the
    /// bytes in the line buffer first.
    fn read_large(&mut self, py: Python<'_>, n: usize) -> PyResult<Vec<u8>> {
        let mut out = self.take(n);
        // The reserve is bounded by the body actually arriving: grow in
        // steps instead of trusting `n` for one allocation.
        while out.len() < n && !self.eof {
            let start = out.len();
            let step = (n - start).min(1024 * 1024);
            out.resize(start + step, 0);
            let reader = &mut self.reader;
            let target = &mut out[start..];
            let read = py.detach(|| loop {
                match reader.read(target) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            });
            match read {
                Ok(0) => {
                    out.truncate(start);
                    self.eof = true;
                }
                Ok(read) => out.truncate(start + read),
                Err(error) => {
                    return Err(PyOSError::new_err(format!(
                        "error reading the request body: {error}"
                    )))
                }
            }
        }
        Ok(out)
    }

    fn readline(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let mut scanned = 0;
        loop {
            let available = self.available();
            if let Some(i) = memchr_newline(&available[scanned..]) {
                let end = scanned + i + 1;
                return Ok(self.take(limit.map_or(end, |n| n.min(end))));
            }
            scanned = available.len();
            if limit.is_some_and(|n| scanned >= n) || !self.fill(py)? {
                return Ok(self.take(limit.unwrap_or(usize::MAX)));
            }
        }
    }
}

fn memchr_newline(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == b'\n')
}

/// A negative or missing size means "no limit", as for Python files.
fn size_limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

impl Input {
    /// Wraps a reader that yields exactly the request body.
    pub fn new(reader: Box<dyn Read + Send>) -> Self {
        Self {
            state: Mutex::new(Buffered {
                reader,
                buf: Vec::new(),
                pos: 0,
                eof: false,
            }),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut Buffered) -> PyResult<T>) -> PyResult<T> {
        let mut state = self
            .state
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("wsgi.input is in use by another thread"))?;
        f(&mut state)
    }
}

#[pymethods]
impl Input {
    /// `read(size=-1)`: up to `size` bytes, or the rest of the body.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.with_state(|s| s.read(py, size_limit(size)))?;
        Ok(PyBytes::new(py, &data))
    }

    /// `readline(size=-1)`: one line including its `\n`, at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.with_state(|s| s.readline(py, size_limit(size)))?;
        Ok(PyBytes::new(py, &data))
    }

    /// `readlines(hint=-1)`: lines until the end, or until `hint` bytes were read.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_limit(hint).filter(|&n| n > 0);
        self.with_state(|s| {
            let mut lines = Vec::new();
            let mut total = 0;
            loop {
                let line = s.readline(py, None)?;
                if line.is_empty() {
                    break;
                }
                total += line.len();
                lines.push(PyBytes::new(py, &line));
                if hint.is_some_and(|h| total >= h) {
                    break;
                }
            }
            Ok(lines)
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with_state(|s| s.readline(py, None))?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}
