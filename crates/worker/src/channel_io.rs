//! Blocking ends of the channels between an app thread and its
//! connection's event-loop task: the request body comes in as chunks, and
//! the app thread reports the end of its turn as a frame. The app thread
//! never waits on the socket, so a slow client costs the event loop a
//! buffer, not a thread.

use std::io::{self, Read};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::exchange::Ending;

/// What an app thread tells its connection task (the response bytes go
/// through the connection's [`crate::outbuf::OutBuf`]).
pub enum Frame {
    /// The app started reading the body: send `100 Continue` if the client
    /// waits for it, and start reading the body from the socket.
    WantBody,
    /// The app is done with the exchange, or paused until the client
    /// reads.
    End(Ending),
}

/// A chunk of request body, or why the body ended badly.
pub type BodyChunk = Result<Vec<u8>, String>;

/// `wsgi.input`'s source in threaded workers.
pub struct ChannelBody {
    /// `None` for a request without a body.
    chunks: Option<mpsc::Receiver<BodyChunk>>,
    /// Where to announce the first read; `None` when the body is pumped
    /// without being asked (HTTP/2, where flow control bounds it).
    frames: Option<mpsc::Sender<Frame>>,
    current: Vec<u8>,
    pos: usize,
    asked: bool,
    finished: bool,
    /// Why the body ended badly: every later read fails the same way, so
    /// an app retrying cannot take the failure for the end of the body.
    failed: Option<String>,
}

impl ChannelBody {
    /// A body fed through `chunks`; `has_body` false for bodyless requests,
    /// which then never ask the connection for anything.
    pub fn new(
        chunks: Option<mpsc::Receiver<BodyChunk>>,
        frames: Option<mpsc::Sender<Frame>>,
    ) -> Self {
        let has_body = chunks.is_some();
        Self {
            chunks,
            frames,
            current: Vec::new(),
            pos: 0,
            asked: false,
            finished: !has_body,
            failed: None,
        }
    }
}

impl Read for ChannelBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = (self.current.len() - self.pos).min(buf.len());
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(reason) = &self.failed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, reason.clone()));
            }
            if self.finished || buf.is_empty() {
                return Ok(0);
            }
            if !self.asked {
                self.asked = true;
                if let Some(frames) = &self.frames {
                    frames
                        .blocking_send(Frame::WantBody)
                        .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
                }
            }
            let Some(chunks) = self.chunks.as_mut() else {
                return Ok(0);
            };
            match chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Some(Err(reason)) => {
                    self.failed = Some(reason);
                }
                None => {
                    self.finished = true;
                    return Ok(0);
                }
            }
        }
    }
}

/// A body reader that records, in a flag the response sink can see,
/// that the app asked for the body (see
/// [`crate::sink::HttpSink::close_unless_body_requested`]).
pub struct NoticeRead<R> {
    inner: R,
    requested: Arc<std::sync::atomic::AtomicBool>,
}

impl<R: Read> NoticeRead<R> {
    /// Wraps `inner`; `requested` is set on the first read that asks for bytes.
    pub fn new(inner: R, requested: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self { inner, requested }
    }
}

impl<R: Read> Read for NoticeRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            // Before the read sends `WantBody`: the head, sent later on
            // this same thread, must see it.
            self.requested
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.inner.read(buf)
    }
}
