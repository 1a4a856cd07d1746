//! Blocking ends of the channels between an app thread and its
//! connection's event-loop task: the request body comes in as chunks, the
//! framed response goes out as frames. The app thread never touches the
//! socket, so a slow client costs the event loop a buffer, not a thread.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;

use tokio::sync::mpsc;

use crate::exchange::Next;
use crate::sink::Transport;

/// What an app thread tells its connection task.
pub enum Frame {
    /// Response bytes to write.
    Data(Vec<u8>),
    /// The app started reading the body: send `100 Continue` if the client
    /// waits for it, and start reading the body from the socket.
    WantBody,
    /// The exchange is over.
    End(Next),
}

/// A chunk of request body, or why the body ended badly.
pub type BodyChunk = Result<Vec<u8>, String>;

/// `wsgi.input`'s source in threaded workers.
pub struct ChannelBody {
    chunks: mpsc::Receiver<BodyChunk>,
    /// Where to announce the first read; `None` when the body is pumped
    /// without being asked (HTTP/2, where flow control bounds it).
    frames: Option<mpsc::Sender<Frame>>,
    current: Vec<u8>,
    pos: usize,
    asked: bool,
    finished: bool,
}

impl ChannelBody {
    /// A body fed through `chunks`; `has_body` false for bodyless requests,
    /// which then never ask the connection for anything.
    pub fn new(
        chunks: mpsc::Receiver<BodyChunk>,
        frames: Option<mpsc::Sender<Frame>>,
        has_body: bool,
    ) -> Self {
        Self {
            chunks,
            frames,
            current: Vec::new(),
            pos: 0,
            asked: false,
            finished: !has_body,
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
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Some(Err(reason)) => {
                    self.finished = true;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, reason));
                }
                None => {
                    self.finished = true;
                    return Ok(0);
                }
            }
        }
    }
}

/// The response side: each write becomes one frame for the event loop.
pub struct ChannelWriter(pub mpsc::Sender<Frame>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Frame::Data(buf.to_vec()))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for ChannelWriter {
    fn send_file(&mut self, _fd: RawFd, _offset: u64, _count: u64) -> io::Result<bool> {
        // The socket belongs to the event loop; copy the file through frames.
        Ok(false)
    }
}
