//! ferricorn worker processes.
//!
//! A worker is forked by the master with the listening sockets and a
//! scoreboard slot. [`run`] uses the Python interpreter inherited from the
//! master (a `python` process), imports the app
//! (unless preloaded), runs the worker's server hooks ([`hooks`]), and
//! serves with the configured worker class until told
//! to stop. The return value is the process exit code, as gunicorn's:
//! 0 after a clean stop, 3 when the worker could not boot, 4 when the app
//! could not be loaded.

pub mod access_log;
mod admission;
mod asgi;
mod body;
mod body_guard;
mod channel_io;
mod classes;
mod clock;
pub mod exchange;
mod gil_probe;
mod h2;
mod head;
pub mod hooks;
mod http1;
mod io;
mod outbuf;
pub mod policy;
mod pool;
mod quiet_end;
mod reload_report;
mod sendfile;
mod shutdown;
mod signals;
mod sink;
pub mod stream;
mod sync;
mod threaded;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use ferricorn_config::Settings;
use ferricorn_http::{HeaderMapPolicy, ParserOptions};
use ferricorn_python::interpreter::{self, InterpreterOptions};
use ferricorn_python::wsgi::WsgiApp;
use pyo3::{Py, PyAny, Python};

use classes::{Interface, Served};

pub use stream::Listener;

/// Exit code of a worker that could not boot.
pub const WORKER_BOOT_ERROR: i32 = 3;
/// Exit code of a worker whose app could not be loaded.
pub const APP_LOAD_ERROR: i32 = 4;

/// How often an idle worker loop beats. Well under the smallest
/// `--timeout` (1 s): a loop beating only once a timeout would be killed
/// for a few milliseconds of scheduling delay.
pub const BEAT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// How a worker reports liveness to the master (its scoreboard slot).
pub trait Heartbeat: Send + Sync {
    /// The event loop is alive.
    fn beat(&self);
    /// The app is loaded and the listeners are being served.
    fn ready(&self);
    /// A request with this request line (method, target, version) was
    /// handed to the app; returns a token for [`Heartbeat::request_finished`]
    /// (`--request-timeout` watches it).
    fn request_started(&self, line: [&[u8]; 3]) -> Option<usize>;
    /// The app finished the request `token` came from.
    fn request_finished(&self, token: Option<usize>);
    /// A response is complete (where the access log line is written), for
    /// metrics; the duration is the one the access log prints.
    fn request_done(&self, _done: &RequestDone<'_>) {}
}

/// One finished request as metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestDone<'a> {
    /// The request method.
    pub method: &'a str,
    /// `HTTP/1.1` etc.
    pub protocol: &'a str,
    /// The response status.
    pub status: u16,
    /// The URL scheme is `https`.
    pub secure: bool,
    /// Request head parsed → response finished.
    pub elapsed: Duration,
    /// The request line, for slow-request logging.
    pub target: &'a [u8],
}

/// Everything a worker needs, handed over by the master after `fork()`.
pub struct WorkerSetup {
    /// The resolved configuration.
    pub settings: Arc<Settings>,
    /// Listening sockets inherited from the master.
    pub listeners: Vec<Listener>,
    /// This worker's scoreboard slot.
    pub heartbeat: Arc<dyn Heartbeat>,
    /// TLS configuration, built by the binary before binding.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The app imported by the master (`--preload`); the worker then uses
    /// the interpreter inherited from the master and imports nothing.
    pub preloaded: Option<Py<PyAny>>,
    /// The worker's sequence number (`worker.age` for hooks).
    pub age: u64,
}

/// Why a worker stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The event loop could not be set up.
    #[error("cannot start the event loop: {0}")]
    Runtime(std::io::Error),
    /// The worker could not boot (an ASGI lifespan startup failed).
    #[error("{0}")]
    Boot(String),
}

/// Settings of a worker class, derived once from the configuration.
pub struct ClassOptions {
    /// HTTP parser strictness and limits.
    pub parser: ParserOptions,
    /// PROXY protocol rules.
    pub proxy: head::ProxyRules,
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// Blocking I/O timeout while the app owns a connection.
    pub io_timeout: Duration,
    /// How long a request body may go without a byte (`--body-timeout`).
    pub body_timeout: Duration,
    /// How long a response may go without the client taking a byte.
    pub send_timeout: Duration,
    /// Bytes of response buffered per connection (`--response-buffer`).
    pub response_buffer: usize,
    /// Most connections a worker holds at once.
    pub max_connections: usize,
    /// Idle time allowed between requests on one connection (0: no keep-alive).
    pub keepalive: Duration,
    /// How long in-flight requests may run after `TERM`.
    pub graceful_timeout: Duration,
    /// TLS, when `--certfile` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// HTTP/2 limits.
    pub http2: h2::Http2Options,
    /// Whether cleartext connections starting with the HTTP/2 preface are
    /// served as h2c (`--http2-cleartext prior-knowledge`).
    pub h2c_prior_knowledge: bool,
    /// Peers allowed to use h2c (the trusted front-ends, `forwarded_allow_ips`).
    pub h2c_allow: ferricorn_config::AllowList,
}

impl ClassOptions {
    fn from_settings(settings: &Settings, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self {
            parser: ParserOptions {
                limit_request_line: settings.limit_request_line,
                limit_request_fields: settings.limit_request_fields,
                limit_request_field_size: settings.limit_request_field_size,
                permit_obsolete_folding: settings.permit_obsolete_folding,
                strip_header_spaces: settings.strip_header_spaces,
                permit_unconventional_http_method: settings.permit_unconventional_http_method,
                permit_unconventional_http_version: settings.permit_unconventional_http_version,
                casefold_http_method: settings.casefold_http_method,
                // Underscore headers are judged by the request policy, which
                // knows whether the peer is a trusted forwarder.
                header_map: HeaderMapPolicy::Dangerous,
            },
            proxy: head::ProxyRules {
                mode: settings.proxy_protocol,
                allow: settings.proxy_allow_ips.clone(),
            },
            header_timeout: Duration::from_secs(settings.header_timeout),
            io_timeout: Duration::from_secs(settings.header_timeout),
            body_timeout: Duration::from_secs(settings.body_timeout),
            send_timeout: Duration::from_secs(settings.send_timeout),
            response_buffer: usize::try_from(settings.response_buffer).unwrap_or(usize::MAX),
            max_connections: usize::try_from(settings.worker_connections).unwrap_or(1000),
            keepalive: Duration::from_secs(settings.keepalive),
            graceful_timeout: Duration::from_secs(settings.graceful_timeout),
            tls,
            http2: h2::Http2Options {
                max_concurrent_streams: settings.http2_max_concurrent_streams,
                initial_window_size: settings.http2_initial_window_size,
                max_frame_size: settings.http2_max_frame_size,
                max_header_list_size: settings.http2_max_header_list_size,
            },
            h2c_prior_knowledge: settings.http2_cleartext == "prior-knowledge",
            h2c_allow: settings.forwarded_allow_ips.clone(),
        }
    }
}

impl ClassOptions {
    /// Whether a connection may wait for another request after the current
    /// one: the class keeps connections alive and the worker is not
    /// stopping. The request (`Connection`, HTTP/1.0) and the response
    /// (the app's `Connection: close`, an unread body) decide the rest
    /// where the response is framed.
    pub(crate) fn keep_alive(&self, stopping: &tokio::sync::watch::Receiver<bool>) -> bool {
        !self.keepalive.is_zero() && !*stopping.borrow()
    }
}

/// Runs a worker process to completion and returns its exit code.
pub fn run(setup: WorkerSetup) -> i32 {
    let WorkerSetup {
        settings,
        listeners,
        heartbeat,
        tls,
        preloaded,
        age,
    } = setup;
    signals::install();
    sendfile::set_enabled(settings.sendfile);
    let pid = std::process::id();
    tracing::info!("Booting worker with pid: {pid}");
    heartbeat.beat();

    let options = InterpreterOptions {
        chdir: settings.chdir.clone(),
        pythonpath: settings.pythonpath.clone(),
    };
    // The interpreter is the master's, inherited; the paths are set again
    // because a `HUP` may have changed them.
    if let Err(error) = interpreter::start(&options) {
        tracing::error!("Exception in worker process: {error}");
        return WORKER_BOOT_ERROR;
    }
    let hooks = match Python::attach(|py| hooks::WorkerHooks::load(py, &settings, age)) {
        Ok(hooks) => hooks,
        Err(traceback) => {
            tracing::error!("Exception in worker process:\n{traceback}");
            return WORKER_BOOT_ERROR;
        }
    };
    if let Some(hooks) = &hooks {
        signals::run_hooks_on_exit(hooks);
        hooks.run("post_fork");
    }
    let Some(spec) = settings.wsgi_app.as_deref() else {
        tracing::error!("No application module specified.");
        return APP_LOAD_ERROR;
    };
    let class = classes::for_settings(&settings);
    let multiprocess = settings.workers > 1;
    let loaded = Python::attach(|py| {
        let callable = match preloaded {
            Some(app) => app,
            None => ferricorn_python::app::load(py, spec).map_err(|error| error.to_string())?,
        };
        let asgi = match settings.interface.as_str() {
            "asgi" => true,
            "wsgi" => false,
            _ => {
                settings.worker_class_asgi
                    || ferricorn_python::asgi::is_asgi(py, callable.bind(py))
                        .map_err(|error| ferricorn_python::app::format_error(py, &error))?
            }
        };
        let interface = if asgi {
            Interface::Asgi
        } else {
            Interface::Wsgi
        };
        class
            .check(interface)
            .map_err(|refusal| format!("{spec} {refusal}"))?;
        match interface {
            Interface::Asgi => Ok(App::Asgi(callable)),
            Interface::Wsgi => WsgiApp::new(py, callable, class.multithread(), multiprocess)
                .map(App::Wsgi)
                .map_err(|error| ferricorn_python::app::format_error(py, &error)),
        }
    });
    let app = match loaded {
        Ok(app) => app,
        Err(message) => {
            tracing::error!("Exception in worker process:\n{message}");
            return APP_LOAD_ERROR;
        }
    };
    if let Some(hooks) = &hooks {
        hooks.run("post_worker_init");
    }
    if settings.reload {
        reload_report::report(&settings.chdir);
    }
    let policy = policy::RequestPolicy {
        forwarded_allow_ips: settings.forwarded_allow_ips.clone(),
        secure_scheme_headers: settings.secure_scheme_headers.clone(),
        forwarder_headers: settings.forwarder_headers.clone(),
        header_map: settings.header_map,
        script_name: std::env::var("SCRIPT_NAME").unwrap_or_default(),
    };
    // gunicorn logs requests to syslog, or to a logconfig's handlers, even
    // without an access log file.
    let access_format = (settings.accesslog.is_some()
        || settings.logconfig.active().is_some()
        || (settings.ops.syslog.enabled && !settings.ops.syslog.disable_redirect_access))
        .then(|| {
            access_log::AccessFormat::compile(&settings.access_log_format)
                .with_json(settings.ops.log_format == ferricorn_config::LogFormat::Json)
        });
    let served = match app {
        App::Asgi(app) => Served::Asgi(asgi::AsgiSetup {
            app,
            options: ferricorn_python::asgi::AsgiOptions {
                loop_kind: settings.asgi_loop.clone(),
                lifespan: settings.asgi_lifespan.clone(),
                disconnect_grace: settings.asgi_disconnect_grace_period as f64,
                root_path: settings.root_path.clone(),
            },
            policy,
            access_format,
            heartbeat,
            startup_timeout: Duration::from_secs(settings.timeout),
            ws: asgi::WsOptions::from_settings(&settings),
            request_hooks: hooks
                .as_ref()
                .and_then(|hooks| Python::attach(|py| hooks.asgi_request_hooks(py))),
        }),
        App::Wsgi(app) => Served::Wsgi(exchange::ExchangeContext {
            app,
            policy,
            access_format,
            heartbeat,
            request_hooks: hooks.as_ref().and_then(hooks::WorkerHooks::request_hooks),
        }),
    };
    let options = ClassOptions::from_settings(&settings, tls);
    let result = classes::serve(class.as_ref(), served, listeners, options);
    finish(hooks.as_deref(), result, pid)
}

/// The loaded application, by interface.
enum App {
    Wsgi(WsgiApp),
    Asgi(Py<PyAny>),
}

/// Runs `worker_exit` and turns the serving result into the exit code.
fn finish(hooks: Option<&hooks::WorkerHooks>, result: Result<(), WorkerError>, pid: u32) -> i32 {
    if let Some(hooks) = hooks {
        hooks.run("worker_exit");
    }
    match result {
        Ok(()) => {
            tracing::info!("Worker exiting (pid: {pid})");
            0
        }
        Err(error) => {
            tracing::error!("Exception in worker process: {error}");
            WORKER_BOOT_ERROR
        }
    }
}
