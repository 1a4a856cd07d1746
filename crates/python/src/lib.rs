//! ferricorn's bridge to CPython.
//!
//! ferricorn runs inside the `python` process of its console script. A
//! worker puts the app on `sys.path` ([`interpreter::start`]), loads
//! the user's application ([`app::load`]) and then calls it once per request
//! through [`wsgi::WsgiApp::call`]. The bridge knows WSGI (PEP 3333) but no
//! HTTP framing: bytes come in through [`std::io::Read`] and the response
//! leaves through the [`wsgi::ResponseSink`] the worker provides.

pub mod app;
pub mod asgi;
pub mod environ;
pub mod fork;
pub mod hooks;
pub mod input;
pub mod interpreter;
pub mod response;
pub mod wsgi;

/// Everything that can go wrong in the bridge outside a request.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The interpreter could not be started.
    #[error("cannot start the Python interpreter: {0}")]
    Interpreter(String),
    /// The application could not be imported or resolved.
    #[error("{0}")]
    AppLoad(String),
}
