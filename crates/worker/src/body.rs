//! Reading a request body on a blocking connection while the app runs.
//!
//! [`BodyReader`] removes the framing (`Content-Length` or chunked), answers
//! `Expect: 100-continue` when the app first reads, and never reads past the
//! end of the body. The worker keeps a [`BodyHandle`] to the same state so it
//! can tell afterwards whether the body was consumed, and drain what the app
//! left unread before the connection is closed.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use ferricorn_http::{BodyDecoder, BodyKind, HttpError};

use crate::exchange::BodyError;
use crate::stream::SharedStream;

/// How much of a body the app left unread is drained to keep (or cleanly
/// close) the connection; past this the connection is simply closed.
/// Shared by every worker class.
pub(crate) const DRAIN_LIMIT: u64 = 1024 * 1024;

struct BodyState {
    stream: SharedStream,
    /// Bytes already read from the socket but not yet consumed.
    pending: Vec<u8>,
    pending_pos: usize,
    decoder: BodyDecoder,
    /// `Some` until the `100 Continue` interim response is sent.
    continue_to: Option<SharedStream>,
    error_slot: BodyError,
}

/// The request body, as handed to `wsgi.input`.
pub struct BodyReader(Arc<Mutex<BodyState>>);

/// The worker's view of the same body, used after the app returns.
pub struct BodyHandle(Arc<Mutex<BodyState>>);

/// Builds the reader for a body framed as `kind`, starting with the bytes
/// already read past the head (`pending`). `continue_to` is where to send
/// `100 Continue` if the client asked for it.
pub fn body_reader(
    kind: &BodyKind,
    stream: SharedStream,
    pending: Vec<u8>,
    continue_to: Option<SharedStream>,
    error_slot: BodyError,
) -> (BodyReader, BodyHandle) {
    let decoder = BodyDecoder::new(kind);
    let has_body = !decoder.is_done();
    let state = Arc::new(Mutex::new(BodyState {
        stream,
        pending,
        pending_pos: 0,
        decoder,
        continue_to: continue_to.filter(|_| has_body),
        error_slot,
    }));
    (BodyReader(Arc::clone(&state)), BodyHandle(state))
}

fn lock(state: &Mutex<BodyState>) -> io::Result<MutexGuard<'_, BodyState>> {
    state
        .lock()
        .map_err(|_| io::Error::other("request body state poisoned"))
}

/// What `wsgi.input` raises for a failed body: never mistaken for its end.
pub(crate) fn read_error(error: &HttpError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid request body: {}", error.detail),
    )
}

/// The failure recorded when the client stalls in the middle of a body
/// (`--body-timeout` while the app reads, `--header-timeout` for a body
/// read ahead with its head): 408, as for a head that stalls.
pub(crate) fn timeout_error() -> HttpError {
    HttpError::new(408, "timed out reading the request body")
}

impl BodyState {
    /// Raw bytes from the connection: what was read with the head first.
    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(mut interim) = self.continue_to.take() {
            interim.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let pending = &self.pending[self.pending_pos..];
        if !pending.is_empty() {
            let n = pending.len().min(buf.len());
            buf[..n].copy_from_slice(&pending[..n]);
            self.pending_pos += n;
            return Ok(n);
        }
        self.stream.read(buf)
    }

    /// Puts raw bytes read past the end of the body back, for whatever
    /// reads the connection next.
    fn unread(&mut self, rest: &[u8]) {
        self.pending.drain(..self.pending_pos);
        self.pending_pos = 0;
        self.pending.splice(0..0, rest.iter().copied());
    }

    /// Records `error` as the body's failure, for the exchange's answer.
    fn failed(&mut self, error: HttpError) -> io::Error {
        let error = self.decoder.fail(error);
        let _ = self.error_slot.set(error.clone());
        read_error(&error)
    }

    /// Reads raw bytes straight into `buf` and decodes them there.
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(error) = self.decoder.error() {
                return Err(read_error(error));
            }
            let want = self.decoder.read_size(buf.len());
            if self.decoder.is_done() || want == 0 {
                return Ok(0);
            }
            let n = match self.read_raw(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Err(self.failed(timeout_error()));
                }
                Err(e) => {
                    let detail = format!("error reading the request body: {e}");
                    return Err(self.failed(HttpError::bad_request(detail)));
                }
            };
            if n == 0 {
                return match self.decoder.end_of_input() {
                    Ok(()) => Ok(0),
                    Err(error) => Err(self.failed(error)),
                };
            }
            match self.decoder.decode_in_place(&mut buf[..n]) {
                Ok(decoded) => {
                    if decoded.consumed < n {
                        let rest = buf[decoded.consumed..n].to_vec();
                        self.unread(&rest);
                    }
                    if decoded.body > 0 {
                        return Ok(decoded.body);
                    }
                }
                Err(error) => return Err(self.failed(error)),
            }
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.0)?.read_body(buf)
    }
}

impl BodyHandle {
    /// Reads and discards what the app left of the body, up to a bound, so
    /// closing the connection does not reset it under the client's feet.
    /// Returns true when the body was consumed entirely.
    pub fn drain(&self) -> bool {
        let Ok(mut state) = lock(&self.0) else {
            return false;
        };
        if state.decoder.error().is_some() {
            return false;
        }
        if state.continue_to.is_some() {
            // The client waits for our go-ahead and has not sent the body.
            return false;
        }
        let mut scratch = [0u8; 16 * 1024];
        let mut drained = 0u64;
        while !state.decoder.is_done() {
            if drained > DRAIN_LIMIT {
                return false;
            }
            match state.read_body(&mut scratch) {
                Ok(0) => break,
                Ok(n) => drained += n as u64,
                Err(_) => return false,
            }
        }
        state.decoder.is_done()
    }
}
