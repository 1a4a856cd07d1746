//! The HTTP/1.x connection driver of the keep-alive classes (`gthread`,
//! `async` with a WSGI app, `async` with an ASGI app).
//!
//! It owns everything about a connection that does not depend on where the
//! app runs: the transport (TLS handshake, ALPN `h2`, h2c prior knowledge),
//! then request after request: wait for the first bytes as an idle
//! connection the accept path may close for room, read and check the head
//! (a refused or late head is answered here, once for every class), decide
//! whether the connection may stay open, and close it. A class supplies
//! the rest through [`Http1Service`]: its per-connection state, the
//! exchange itself, and how it serves HTTP/2.
//!
//! `sync` keeps its own accept-time fast path (the app runs inline on the
//! loop, one request per connection) but reads heads with the same
//! [`read_request`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::access_log::AccessFormat;
use crate::admission::{Admitted, IdleSet};
use crate::exchange::Peer;
use crate::head::{read_head, HeadReader, ReadyHead};
use crate::io::{Accepted, AsyncStream};
use crate::ClassOptions;

/// The parts of a class's shared state the driver uses.
pub(crate) struct Front<'a> {
    /// The class's settings.
    pub(crate) options: &'a ClassOptions,
    /// Connections waiting for a request's first bytes.
    pub(crate) idle: &'a IdleSet,
    /// Turns `true` when the worker stops.
    pub(crate) stopping: &'a watch::Receiver<bool>,
    /// The TLS acceptor, on an `https` worker.
    pub(crate) tls: Option<&'a tokio_rustls::TlsAcceptor>,
    /// The access log format, for refused heads.
    pub(crate) access_format: Option<&'a AccessFormat>,
}

/// What a class plugs into [`connection`].
pub(crate) trait Http1Service: Send + Sync + Sized + 'static {
    /// State a connection keeps from request to request.
    type Conn: Send;

    /// Largest body read along with the head, before the exchange starts.
    const PREREAD: u64;

    /// What the driver reads of the class's shared state.
    fn front(&self) -> Front<'_>;

    /// Serves the connection as HTTP/2 (ALPN `h2` or h2c prior knowledge).
    fn serve_h2(
        self: Arc<Self>,
        stream: AsyncStream,
        peer: Peer,
    ) -> impl Future<Output = ()> + Send;

    /// The per-connection state, once the transport is settled.
    fn open(&self, stream: &AsyncStream) -> Self::Conn;

    /// Runs one request. Returns the bytes read past it when the
    /// connection can carry another request (`keep_alive` says whether the
    /// worker allows that at all). `spare` is the head's buffer, free to
    /// reuse.
    #[allow(clippy::too_many_arguments)]
    fn exchange<'a>(
        self: &'a Arc<Self>,
        conn: &'a mut Self::Conn,
        stream: &'a mut AsyncStream,
        peer: Peer,
        ready: ReadyHead,
        spare: Vec<u8>,
        keep_alive: bool,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send + 'a;

    /// The connection is closing after `exchange` gave up on it.
    fn abandon(self: &Arc<Self>, conn: &mut Self::Conn);
}

/// One connection, request after request.
pub(crate) async fn connection<S: Http1Service>(
    service: Arc<S>,
    conn: Accepted,
    _admitted: Admitted,
) {
    let remote = conn.remote;
    let (mut stream, mut peer) = conn.into_parts();
    let front = service.front();
    let options = front.options;
    let mut stopping = front.stopping.clone();
    let mut reader = HeadReader::new(&options.parser, &options.proxy, S::PREREAD);
    if let Some(acceptor) = front.tls {
        let deadline = Instant::now() + options.header_timeout;
        // A client that has not begun its handshake is idle too.
        let started = tokio::time::timeout_at(deadline, stream.has_data());
        if while_idle(front.idle, None, started).await != Some(Ok(true)) {
            return;
        }
        let Some(tls) = crate::io::tls_handshake(acceptor, stream, deadline, remote).await else {
            return;
        };
        stream = tls;
        peer.secure = true;
        if stream.alpn_protocol() == Some(b"h2") {
            Arc::clone(&service).serve_h2(stream, peer).await;
            return;
        }
    } else if options.h2c_prior_knowledge {
        match crate::h2::sniff_preface(&mut stream, &mut reader.buf, options.header_timeout).await {
            Some(true) => {
                if remote.is_none_or(|a| options.h2c_allow.allows(a.ip())) {
                    let buffered = std::mem::take(&mut reader.buf);
                    let stream = AsyncStream::Rewound(buffered, Box::new(stream));
                    Arc::clone(&service).serve_h2(stream, peer).await;
                }
                return;
            }
            Some(false) => {}
            None => return,
        }
    }
    let mut state = service.open(&stream);
    let mut first = true;
    loop {
        // A new connection's head is due `--header-timeout` after it is
        // set up; a keep-alive request's, after its first bytes.
        let mut deadline = Instant::now() + options.header_timeout;
        if reader.buf.is_empty() {
            // A new connection that has sent nothing yet waits through the
            // stop (its request may be on the way already); an idle
            // keep-alive one does not.
            let (until, stop) = if first {
                (deadline, None)
            } else {
                (Instant::now() + options.keepalive, Some(&mut stopping))
            };
            let read = tokio::time::timeout_at(until, stream.read_buf(&mut reader.buf));
            match while_idle(front.idle, stop, read).await {
                Some(Ok(Ok(n))) if n > 0 => {}
                // read_request answers the late first head with its 408.
                Some(Err(_)) if first => {}
                _ => return,
            }
            if !first {
                deadline = Instant::now() + options.header_timeout;
            }
        }
        first = false;
        let (access, timeout) = (front.access_format, options.header_timeout);
        let read = read_request(
            &mut stream,
            &mut reader,
            &mut peer,
            deadline,
            access,
            timeout,
        );
        let Some(ready) = read.await else {
            return;
        };
        let keep_alive = options.keep_alive(&stopping);
        let spare = std::mem::take(&mut reader.buf);
        let exchange = service.exchange(&mut state, &mut stream, peer, ready, spare, keep_alive);
        match exchange.await {
            Some(leftover) if keep_alive => reader.buf = leftover,
            _ => {
                service.abandon(&mut state);
                // The app's side may hold a copy of the descriptor beyond
                // this task (a Python traceback cycle keeps response
                // objects alive): shut the socket down so the client sees
                // the end now, not at the next GC.
                let close = tokio::io::AsyncWriteExt::shutdown(&mut stream);
                let _ = tokio::time::timeout(options.io_timeout, close).await;
                return;
            }
        }
    }
}

/// Reads a request head until `deadline`. A head that is refused or late
/// is answered (and logged) here, and `None` returned: the connection is
/// to be closed. `header_timeout` is the limit a 408 names.
pub(crate) async fn read_request(
    stream: &mut AsyncStream,
    reader: &mut HeadReader<'_>,
    peer: &mut Peer,
    deadline: Instant,
    access: Option<&AccessFormat>,
    header_timeout: Duration,
) -> Option<ReadyHead> {
    match read_head(stream, reader, peer, deadline).await {
        Ok(ready) => Some(ready),
        Err(error) => {
            if let Some(answer) = error.answer(access, peer, &reader.buf, header_timeout) {
                let _ = stream.write_all(&answer).await;
            }
            None
        }
    }
}

/// Runs `wait` as a connection the accept path may close to make room:
/// `None` if it was evicted first, or the worker began stopping (when
/// `stop` is given). A result already there wins over both.
async fn while_idle<F: Future>(
    idle: &IdleSet,
    stop: Option<&mut watch::Receiver<bool>>,
    wait: F,
) -> Option<F::Output> {
    let entry = idle.enter();
    let stopped = async {
        match stop {
            Some(stop) => {
                let _ = stop.wait_for(|stopping| *stopping).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        done = wait => Some(done),
        () = stopped => None,
        () = entry.evicted() => None,
    }
}
