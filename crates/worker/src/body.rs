//! Reading a request body on a blocking connection while the app runs.
//!
//! [`BodyReader`] removes the framing (`Content-Length` or chunked), answers
//! `Expect: 100-continue` when the app first reads, and never reads past the
//! end of the body. The worker keeps a [`BodyHandle`] to the same state so it
//! can tell afterwards whether the body was consumed, and drain what the app
//! left unread before the connection is closed.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use ferricorn_http::{BodyKind, ChunkedDecoder};

use crate::exchange::BodyError;
use crate::stream::SharedStream;

/// How much of a body the app left unread is drained to keep (or cleanly
/// close) the connection; past this the connection is simply closed.
/// Shared by every worker class.
pub(crate) const DRAIN_LIMIT: u64 = 1024 * 1024;

enum Framing {
    Length {
        remaining: u64,
    },
    Chunked {
        decoder: ChunkedDecoder,
        decoded: Vec<u8>,
        pos: usize,
    },
}

struct BodyState {
    stream: SharedStream,
    /// Bytes already read from the socket but not yet consumed.
    pending: Vec<u8>,
    pending_pos: usize,
    framing: Framing,
    /// `Some` until the `100 Continue` interim response is sent.
    continue_to: Option<SharedStream>,
    failed: bool,
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
    let framing = match kind {
        BodyKind::Empty => Framing::Length { remaining: 0 },
        BodyKind::Length(n) => Framing::Length { remaining: *n },
        BodyKind::Chunked => Framing::Chunked {
            decoder: ChunkedDecoder::new(),
            decoded: Vec::new(),
            pos: 0,
        },
    };
    let has_body = !matches!(framing, Framing::Length { remaining: 0 });
    let state = Arc::new(Mutex::new(BodyState {
        stream,
        pending,
        pending_pos: 0,
        framing,
        continue_to: continue_to.filter(|_| has_body),
        failed: false,
        error_slot,
    }));
    (BodyReader(Arc::clone(&state)), BodyHandle(state))
}

fn lock(state: &Mutex<BodyState>) -> io::Result<MutexGuard<'_, BodyState>> {
    state
        .lock()
        .map_err(|_| io::Error::other("request body state poisoned"))
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

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "invalid request body",
            ));
        }
        match &mut self.framing {
            Framing::Length { remaining } => {
                if *remaining == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let want = buf
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                let n = self.read_raw(&mut buf[..want])?;
                if n == 0 {
                    self.failed = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed the connection before the end of the body",
                    ));
                }
                if let Framing::Length { remaining } = &mut self.framing {
                    *remaining -= n as u64;
                }
                Ok(n)
            }
            Framing::Chunked { .. } => self.read_chunked(buf),
        }
    }

    fn read_chunked(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut raw = [0u8; 16 * 1024];
        loop {
            let Framing::Chunked {
                decoder,
                decoded,
                pos,
            } = &mut self.framing
            else {
                return Ok(0);
            };
            if *pos < decoded.len() {
                let n = (decoded.len() - *pos).min(buf.len());
                buf[..n].copy_from_slice(&decoded[*pos..*pos + n]);
                *pos += n;
                return Ok(n);
            }
            if decoder.is_done() || buf.is_empty() {
                return Ok(0);
            }
            decoded.clear();
            *pos = 0;
            let n = self.read_raw(&mut raw)?;
            if n == 0 {
                self.failed = true;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed the connection inside a chunked body",
                ));
            }
            let Framing::Chunked {
                decoder, decoded, ..
            } = &mut self.framing
            else {
                return Ok(0);
            };
            match decoder.decode(&raw[..n], decoded) {
                Ok((used, _done)) => {
                    // The decoder stops at the end of the body; whatever
                    // follows belongs to the next request.
                    if used < n {
                        let rest = raw[used..n].to_vec();
                        self.pending.drain(..self.pending_pos);
                        self.pending_pos = 0;
                        self.pending.splice(0..0, rest);
                    }
                }
                Err(error) => {
                    self.failed = true;
                    let message = error.to_string();
                    let _ = self.error_slot.set(error);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, message));
                }
            }
        }
    }

    fn finished(&self) -> bool {
        match &self.framing {
            Framing::Length { remaining } => *remaining == 0,
            Framing::Chunked {
                decoder,
                decoded,
                pos,
            } => decoder.is_done() && *pos >= decoded.len(),
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
        if state.failed {
            return false;
        }
        if state.continue_to.is_some() {
            // The client waits for our go-ahead and has not sent the body.
            return false;
        }
        let mut scratch = [0u8; 16 * 1024];
        let mut drained = 0u64;
        while !state.finished() {
            if drained > DRAIN_LIMIT {
                return false;
            }
            match state.read_body(&mut scratch) {
                Ok(0) => break,
                Ok(n) => drained += n as u64,
                Err(_) => return false,
            }
        }
        state.finished()
    }
}
