//! Sans-I/O request body de-framing, whatever the framing: one decoder that
//! every worker class drives, so every class enforces the same rules.
//!
//! The caller reads raw bytes from the connection into a buffer and hands
//! it to [`BodyDecoder::decode_in_place`], which leaves the body bytes at
//! the front and says where the body ended; bytes past the end (a
//! pipelined request) are the caller's to keep. A failure of any kind
//! (bad framing, the client closing early, a timeout) is sticky: every
//! later call reports it again, so an app can never mistake it for the end
//! of the body.

use crate::chunked::ChunkedDecoder;
use crate::{BodyKind, HttpError};

#[derive(Clone, Debug)]
enum Framing {
    /// `Content-Length` (or no body): bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// What one [`BodyDecoder::decode_in_place`] call did to its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Raw bytes taken from the front of the buffer.
    pub consumed: usize,
    /// Body bytes now at the front of the buffer (never more than `consumed`).
    pub body: usize,
}

/// Incremental request-body decoder for `Content-Length` and chunked bodies.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    framing: Framing,
    failed: Option<HttpError>,
}

impl BodyDecoder {
    /// A decoder for a body framed as `kind`.
    pub fn new(kind: &BodyKind) -> Self {
        let framing = match kind {
            BodyKind::Empty => Framing::Length(0),
            BodyKind::Length(n) => Framing::Length(*n),
            BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new()),
        };
        Self {
            framing,
            failed: None,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.failed.is_none()
            && match &self.framing {
                Framing::Length(remaining) => *remaining == 0,
                Framing::Chunked(decoder) => decoder.is_done(),
            }
    }

    /// Why the body failed, once it has.
    pub fn error(&self) -> Option<&HttpError> {
        self.failed.as_ref()
    }

    /// How many raw bytes to read next into a buffer of `room` bytes:
    /// never past the end of a `Content-Length` body, so reading straight
    /// into the app's buffer never takes the next request's bytes.
    pub fn read_size(&self, room: usize) -> usize {
        match &self.framing {
            Framing::Length(remaining) => {
                room.min(usize::try_from(*remaining).unwrap_or(usize::MAX))
            }
            Framing::Chunked(_) => room,
        }
    }

    /// Decodes the raw bytes in `buf` in place: afterwards `buf[..body]` is
    /// body data and `buf[consumed..]` follows the body (or was not needed
    /// yet). On an error the body is failed for good.
    pub fn decode_in_place(&mut self, buf: &mut [u8]) -> Result<Decoded, HttpError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match &mut self.framing {
            Framing::Length(remaining) => {
                let n = buf
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                Ok(Decoded {
                    consumed: n,
                    body: n,
                })
            }
            Framing::Chunked(decoder) => match decoder.decode_in_place(buf) {
                Ok((consumed, body)) => Ok(Decoded { consumed, body }),
                Err(error) => Err(self.fail(error)),
            },
        }
    }

    /// The connection delivered no more bytes. Fine once the body is done;
    /// before that, the body fails with a 400.
    pub fn end_of_input(&mut self) -> Result<(), HttpError> {
        if self.is_done() {
            return Ok(());
        }
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let detail = match &self.framing {
            Framing::Length(remaining) => format!(
                "the client closed the connection {remaining} bytes before the end of the body"
            ),
            Framing::Chunked(_) => {
                "the client closed the connection inside a chunked body".to_string()
            }
        };
        Err(self.fail(HttpError::bad_request(detail)))
    }

    /// Fails the body with `error` (an I/O failure the caller saw, such as
    /// a timeout); returns it. A body that already failed keeps its first
    /// error.
    pub fn fail(&mut self, error: HttpError) -> HttpError {
        self.failed.get_or_insert(error).clone()
    }
}
