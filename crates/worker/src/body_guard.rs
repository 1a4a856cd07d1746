//! Holding back the app's response when the request body turned out to be
//! invalid: the client gets the 4xx for its request, not whatever the app
//! made of the read error (Flask, for one, turns it into its own 500 page).
//!
//! Only a response not yet started can be replaced; once the head is out,
//! the app's read raised and the connection closes after the response.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferricorn_python::response::ResponseSink;

use crate::exchange::BodyError;

/// Set by [`GuardedSink`] when it withheld the app's response head.
pub type Withheld = Arc<AtomicBool>;

/// A [`ResponseSink`] that refuses to start a response once the request
/// body has failed, so the exchange can answer with the body's error.
pub struct GuardedSink {
    inner: Box<dyn ResponseSink>,
    body_error: BodyError,
    withheld: Withheld,
}

impl GuardedSink {
    /// Wraps `inner`; `withheld` is raised if the head is held back.
    pub fn new(inner: Box<dyn ResponseSink>, body_error: BodyError, withheld: Withheld) -> Self {
        Self {
            inner,
            body_error,
            withheld,
        }
    }
}

// Every method forwards, the defaulted ones too: a default here would
// silently drop what the inner sink does with it.
impl ResponseSink for GuardedSink {
    fn send_head(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
        body: &[u8],
        complete: bool,
    ) -> io::Result<()> {
        if let Some(error) = self.body_error.get() {
            self.withheld.store(true, Ordering::SeqCst);
            // An error makes the bridge drop the rest of the response.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response withheld: {error}"),
            ));
        }
        self.inner
            .send_head(status, reason, headers, body, complete)
    }

    fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.send_body(data)
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, count: u64) -> io::Result<bool> {
        self.inner.send_file(fd, offset, count)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }

    fn send_informational(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
    ) -> io::Result<()> {
        self.inner.send_informational(status, reason, headers)
    }

    fn close_connection(&mut self) {
        self.inner.close_connection();
    }

    fn keeps_connection(&self) -> bool {
        self.inner.keeps_connection()
    }

    fn may_block(&self) -> bool {
        self.inner.may_block()
    }

    fn wants_more(&self) -> bool {
        self.inner.wants_more()
    }

    fn wait_for_room(&mut self) -> io::Result<()> {
        self.inner.wait_for_room()
    }
}
