//! One request/response exchange on a blocking connection: from a parsed
//! request head to a finished response, through the WSGI app.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferricorn_http::{HttpError, RequestHead};
use ferricorn_python::environ::{KeptEnviron, RequestInfo};
use ferricorn_python::response::ResponseSink;
use ferricorn_python::wsgi::{Called, Outcome, Suspended, WsgiApp};

use crate::access_log::{wire_body_bytes, AccessFormat, AccessRecord};
use crate::body::body_reader;
use crate::body_guard::{GuardedSink, Withheld};
use crate::clock::unix_now;
use crate::head::{log_refused, RequestLineText};
use crate::hooks::RequestHooks;
use crate::outbuf::{BufferedWriter, OutBuf};
use crate::policy::RequestPolicy;
use crate::sink::HttpSink;
use crate::stream::SharedStream;
use crate::Heartbeat;

/// What every exchange of one worker shares.
pub struct ExchangeContext {
    /// The loaded application.
    pub app: WsgiApp,
    /// Trust and header rules from the configuration.
    pub policy: RequestPolicy,
    /// The compiled access-log format, when access logging is on.
    pub access_format: Option<AccessFormat>,
    /// This worker's scoreboard slot.
    pub heartbeat: Arc<dyn Heartbeat>,
    /// `pre_request`/`post_request`; `None` (no per-request cost) unless
    /// one is configured.
    pub request_hooks: Option<RequestHooks>,
}

/// Where a connection came from and arrived at.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client (or, with PROXY protocol, the original client).
    pub remote: Option<SocketAddr>,
    /// The local address it connected to.
    pub local: Option<SocketAddr>,
    /// The address the TCP connection really came from, for trust checks.
    pub transport_remote: Option<SocketAddr>,
    /// The connection is TLS (`wsgi.url_scheme` is `https`).
    pub secure: bool,
}

/// How an exchange ended, for connection management.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The connection may carry another request.
    KeepAlive,
    /// The connection must be closed.
    Close,
}

/// One request, ready for the app: where its body comes from and where its
/// response goes are up to the worker class.
pub struct Exchange {
    /// Who is asking.
    pub peer: Peer,
    /// The parsed request head.
    pub head: RequestHead,
    /// Yields exactly the request body.
    pub body: Box<dyn Read + Send>,
    /// Frames and sends the response.
    pub sink: Box<dyn ResponseSink>,
    /// Set by the body reader when the body's framing is invalid, so the
    /// client gets that 4xx rather than the app's resulting 500.
    pub body_error: BodyError,
}

/// Where a body reader records why the request body failed (bad framing,
/// cut short by the client, stalled) for the exchange.
pub type BodyError = Arc<std::sync::OnceLock<HttpError>>;

/// How an exchange left the app.
pub enum Ending {
    /// The response is produced (possibly still queued for the client);
    /// whether the connection may carry another request.
    Done(Next),
    /// The connection's buffer is full and the app's iterable has more:
    /// resume it once the client has read.
    Pending(Box<Pending>),
}

/// An exchange whose iterable response waits for the client to read (see
/// [`ferricorn_python::wsgi::Suspended`]); its access-log line and
/// `post_request` hook come when it ends.
pub struct Pending {
    call: Suspended,
    after: AfterCall,
}

impl Pending {
    /// Pulls more of the response from the app.
    pub fn resume(self, ctx: &ExchangeContext) -> Ending {
        let Pending { call, after } = self;
        match call.resume() {
            Called::Done(outcome) => Ending::Done(after.finish(ctx, outcome, &mut |_| {})),
            Called::Suspended(call) => Ending::Pending(Box::new(Pending { call, after })),
        }
    }

    /// Ends the exchange because the client stopped reading: the app's
    /// iterable is closed and the exchange logged.
    pub fn abort(self, ctx: &ExchangeContext, why: std::io::Error) {
        let outcome = self.call.abort(why);
        self.after.finish(ctx, outcome, &mut |_| {});
    }
}

/// What logging and hooks need once the app is done with a request.
struct AfterCall {
    peer: Peer,
    head: RequestHead,
    headers: Vec<(String, Vec<u8>)>,
    script_name: String,
    started: Instant,
    started_unix: u64,
    kept: Option<KeptEnviron>,
    hooked: Option<pyo3::Py<pyo3::PyAny>>,
    body_error: BodyError,
    withheld: Withheld,
    /// Whether the request came over https (for the metrics' scheme).
    secure: bool,
}

/// Runs one exchange through the app. `reject` sends a complete error
/// response (a 500 when the app failed before sending anything, a 400 for a
/// refused header). Returns whether the app side allows keeping the
/// connection (the caller still checks the body was consumed), or the
/// exchange to resume when the response waits for the client.
pub fn serve(
    ctx: &ExchangeContext,
    exchange: Exchange,
    reject: &mut dyn FnMut(&HttpError),
) -> Ending {
    let Exchange {
        peer,
        mut head,
        body,
        sink,
        body_error,
    } = exchange;
    let started = Instant::now();
    let started_unix = unix_now();
    let trusted = peer
        .transport_remote
        .is_none_or(|addr| ctx.policy.forwarded_allow_ips.allows(addr.ip()));
    let refused = |head: &RequestHead, error: &HttpError, headers: &[(String, Vec<u8>)]| {
        let line = RequestLineText {
            method: &head.method,
            target: &head.target,
            protocol: head.version.as_str(),
            headers,
        };
        log_refused(ctx.access_format.as_ref(), &peer, error, &line);
    };
    let raw_headers = std::mem::take(&mut head.headers);
    let headers = match ctx.policy.filter_headers(raw_headers, trusted) {
        Ok(headers) => headers,
        Err(error) => {
            refused(&head, &error, &[]);
            reject(&error);
            return Ending::Done(Next::Close);
        }
    };
    let url_scheme = match ctx.policy.url_scheme(&headers, trusted, peer.secure) {
        Ok(scheme) => scheme,
        Err(error) => {
            refused(&head, &error, &headers);
            reject(&error);
            return Ending::Done(Next::Close);
        }
    };
    let secure = url_scheme == "https";
    let script_name = ctx.policy.script_name(&headers, trusted).into_owned();
    let (server_name, server_port) = server_name_port(&headers, peer.local, url_scheme);

    // Kept only when the access log reads it (`%({name}e)s`).
    let kept = ctx
        .access_format
        .as_ref()
        .filter(|format| !format.environ_keys().is_empty())
        .map(|_| KeptEnviron::default());
    let request = RequestInfo {
        line: head.line(),
        headers: headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        remote: peer.remote,
        server_name: &server_name,
        server_port: &server_port,
        url_scheme,
        script_name: &script_name,
        keep: kept.as_ref(),
    };
    let hooked = ctx
        .request_hooks
        .as_ref()
        .and_then(|hooks| hooks.before(&head, &headers));
    let token = ctx.heartbeat.request_started([
        head.method.as_bytes(),
        &head.target,
        head.version.as_str().as_bytes(),
    ]);
    let withheld = Withheld::default();
    let sink = Box::new(GuardedSink::new(
        sink,
        Arc::clone(&body_error),
        Arc::clone(&withheld),
    ));
    let called = ctx.app.call(request, body, sink);
    // A suspended response no longer occupies the app: what is left is
    // the client's reading.
    ctx.heartbeat.request_finished(token);
    drop((server_name, server_port));
    let after = AfterCall {
        peer,
        head,
        headers,
        script_name,
        started,
        started_unix,
        kept,
        hooked,
        body_error,
        withheld,
        secure,
    };
    match called {
        Called::Done(outcome) => Ending::Done(after.finish(ctx, outcome, reject)),
        Called::Suspended(call) => Ending::Pending(Box::new(Pending { call, after })),
    }
}

/// [`serve`] for a sink that never fills (HTTP/2 streams, whose flow
/// control bounds what they hold): resumes until the response is done.
pub fn serve_to_end(
    ctx: &ExchangeContext,
    exchange: Exchange,
    reject: &mut dyn FnMut(&HttpError),
) -> Next {
    let mut ending = serve(ctx, exchange, reject);
    loop {
        match ending {
            Ending::Done(next) => return next,
            Ending::Pending(pending) => ending = pending.resume(ctx),
        }
    }
}

impl AfterCall {
    /// Answers a failed or withheld response, runs `post_request`, writes
    /// the access-log line.
    fn finish(
        self,
        ctx: &ExchangeContext,
        mut outcome: Outcome,
        reject: &mut dyn FnMut(&HttpError),
    ) -> Next {
        let AfterCall {
            peer,
            head,
            headers,
            script_name,
            started,
            started_unix,
            kept,
            hooked,
            body_error,
            withheld,
            secure,
        } = self;
        if let Some(error) = body_error.get() {
            crate::head::warn_invalid(&peer, error);
        }
        // A body found invalid before the response started is answered with
        // its 4xx, whatever the app did with the read error.
        let withheld = withheld.load(std::sync::atomic::Ordering::SeqCst);
        if (outcome.failed && !outcome.head_sent) || withheld {
            let error = body_error.get().cloned().unwrap_or_else(|| {
                HttpError::new(500, "the application failed; see the error log")
            });
            reject(&error);
            outcome.status = error.status;
            outcome.must_close = true;
        }
        if let (Some(hooks), Some(req)) = (&ctx.request_hooks, hooked) {
            hooks.after(req, outcome.status);
        }

        let elapsed = started.elapsed();
        ctx.heartbeat.request_done(&crate::RequestDone {
            method: &head.method,
            protocol: head.version.as_str(),
            status: outcome.status,
            secure,
            elapsed,
            target: &head.target,
        });
        if let Some(format) = &ctx.access_format {
            let environ = kept
                .map(|kept| kept.into_values(format.environ_keys()))
                .unwrap_or_default();
            let line = format.format(&AccessRecord {
                remote: peer.remote,
                line: head.line(),
                script_name: &script_name,
                request_headers: &headers,
                status: outcome.status,
                response_headers: &outcome.headers,
                bytes_sent: wire_body_bytes(&head.method, outcome.status, outcome.bytes_sent),
                elapsed,
                started_unix,
                environ: &environ,
            });
            tracing::info!(target: "ferricorn.access", "{line}");
        }

        if head.keep_alive && !outcome.must_close {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// Serves one request on a connection whose body the app reads from the
/// socket itself (the sync worker); the response goes into `out`, the
/// connection's buffer, which the caller drains.
pub fn serve_blocking(
    ctx: &ExchangeContext,
    shared: SharedStream,
    out: Arc<OutBuf>,
    peer: Peer,
    head: RequestHead,
    pending: Vec<u8>,
    keep_alive: bool,
) -> Ending {
    let continue_to = head.expect_continue.then(|| shared.clone());
    let body_error = BodyError::default();
    let (reader, body) = body_reader(
        &head.body,
        shared,
        pending,
        continue_to,
        Arc::clone(&body_error),
    );
    let keep_alive = keep_alive && head.keep_alive;
    let sink = HttpSink::new(
        BufferedWriter::new(Arc::clone(&out)),
        head.version,
        head.method == "HEAD",
        keep_alive,
    );
    let exchange = Exchange {
        peer,
        head,
        body: Box::new(reader),
        sink: Box::new(sink),
        body_error,
    };
    let mut writer = BufferedWriter::new(out);
    let ending = serve(ctx, exchange, &mut |error| {
        let _ = writer.write_all(&error.to_response());
    });
    let consumed = body.drain();
    match ending {
        Ending::Done(Next::KeepAlive) if keep_alive && consumed => Ending::Done(Next::KeepAlive),
        Ending::Done(_) => Ending::Done(Next::Close),
        pending => pending,
    }
}

/// `SERVER_NAME` and `SERVER_PORT`: from `Host` when sent, else the local
/// address.
fn server_name_port<'a>(
    headers: &'a [(String, Vec<u8>)],
    local: Option<SocketAddr>,
    url_scheme: &str,
) -> (Cow<'a, str>, Cow<'a, str>) {
    let host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok());
    if let Some(host) = host.filter(|h| !h.is_empty()) {
        // An IPv6 literal keeps its brackets; the port follows the last ':'
        // outside them.
        let name_end = if host.starts_with('[') {
            host.find(']').map_or(host.len(), |i| i + 1)
        } else {
            host.rfind(':').unwrap_or(host.len())
        };
        let (name, rest) = host.split_at(name_end);
        // Like gunicorn: a Host without a port means the scheme's default.
        let default_port = if url_scheme == "https" { "443" } else { "80" };
        let port = rest.strip_prefix(':').unwrap_or(default_port);
        return (Cow::Borrowed(name), Cow::Borrowed(port));
    }
    match local {
        Some(addr) => (
            Cow::Owned(addr.ip().to_string()),
            Cow::Owned(addr.port().to_string()),
        ),
        None => (Cow::Borrowed("localhost"), Cow::Borrowed("80")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SERVER_NAME and SERVER_PORT for a request with `host` (or none).
    fn names(host: Option<&str>, scheme: &str) -> (String, String) {
        let headers: Vec<(String, Vec<u8>)> = host
            .map(|h| ("Host".to_string(), h.as_bytes().to_vec()))
            .into_iter()
            .collect();
        let local: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let (name, port) = server_name_port(&headers, Some(local), scheme);
        (name.into_owned(), port.into_owned())
    }

    #[test]
    fn server_name_comes_from_host_then_socket() {
        let pair = |n: &str, p: &str| (n.to_string(), p.to_string());
        assert_eq!(
            names(Some("example.com:81"), "http"),
            pair("example.com", "81")
        );
        assert_eq!(
            names(Some("example.com"), "http"),
            pair("example.com", "80")
        );
        assert_eq!(
            names(Some("example.com"), "https"),
            pair("example.com", "443")
        );
        assert_eq!(names(Some("[::1]:9"), "http"), pair("[::1]", "9"));
        assert_eq!(names(Some("[::1]"), "http"), pair("[::1]", "80"));
        assert_eq!(names(None, "http"), pair("127.0.0.1", "8000"));
    }
}
