//! The resolved settings handed to the rest of ferricorn.

use std::path::{Path, PathBuf};

use crate::bind::Bind;
use crate::cidr::AllowList;
use crate::logconfig::LogConfig;
use crate::operability::Operability;
use crate::types::{HeaderMap, LogLevel, ProxyProtocol, ReloadEngine, SslVersion, WorkerClass};

/// Every supported setting, fully resolved and validated. Names, meanings and
/// defaults are gunicorn's; see the settings table (`ferricorn --help`) for
/// the flag and environment variable of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The WSGI application, `MODULE[:VARIABLE]` (positional `APP_MODULE`).
    pub wsgi_app: Option<String>,
    /// Addresses to listen on (`-b/--bind`); default `127.0.0.1:8000`, or
    /// `0.0.0.0:$PORT` when `PORT` is set.
    pub bind: Vec<Bind>,
    /// Listen queue length (`--backlog`).
    pub backlog: u32,
    /// Number of worker processes (`-w/--workers`), at least 1; default
    /// `$WEB_CONCURRENCY` or 1.
    pub workers: u32,
    /// Worker type (`-k/--worker-class`). As in gunicorn, `sync` with more
    /// than one thread resolves to `gthread`.
    pub worker_class: WorkerClass,
    /// `-k asgi` or `-k uvicorn.workers.UvicornWorker` was given: async
    /// with the ASGI interface unless `--interface` says otherwise.
    pub worker_class_asgi: bool,
    /// The app interface (`--interface`): `auto`, `wsgi` or `asgi`.
    pub interface: String,
    /// The asyncio loop of ASGI workers (`--asgi-loop`): `auto`, `asyncio`, `uvloop`.
    pub asgi_loop: String,
    /// ASGI lifespan protocol (`--asgi-lifespan`): `auto`, `on`, `off`.
    pub asgi_lifespan: String,
    /// Seconds an ASGI app may run after its client left (`--asgi-disconnect-grace-period`).
    pub asgi_disconnect_grace_period: u64,
    /// The ASGI `root_path` (`--root-path`), prefixed into `path`.
    pub root_path: String,
    /// Largest WebSocket message (`--websocket-max-message-size`; 0: none).
    pub websocket_max_message_size: u64,
    /// Seconds between server pings on an open WebSocket (0: none).
    pub websocket_ping_interval: u64,
    /// Seconds a client has to answer a server ping (0: no limit).
    pub websocket_ping_timeout: u64,
    /// Accept permessage-deflate from WebSocket clients.
    pub websocket_per_message_deflate: bool,
    /// Threads per worker (`--threads`), at least 1.
    pub threads: u32,
    /// Maximum simultaneous clients per worker (`--worker-connections`).
    pub worker_connections: u32,
    /// Seconds of worker silence before it is killed (`-t/--timeout`); 0 disables.
    pub timeout: u64,
    /// Seconds workers get to finish after a graceful stop (`--graceful-timeout`).
    pub graceful_timeout: u64,
    /// Requests a worker serves before it is replaced (`--max-requests`); 0 disables.
    pub max_requests: u64,
    /// Up to this many more requests, chosen per worker (`--max-requests-jitter`),
    /// so workers are not all replaced at once.
    pub max_requests_jitter: u64,
    /// Replace the workers when the app's files change (`--reload`).
    pub reload: bool,
    /// More files (globs) to watch with `--reload` (`--reload-extra-file`).
    pub reload_extra_files: Vec<String>,
    /// How `--reload` notices changes (`--reload-engine`).
    pub reload_engine: ReloadEngine,
    /// Send `wsgi.file_wrapper` files with `sendfile()` (`--no-sendfile`
    /// turns it off; else `$SENDFILE`, as gunicorn).
    pub sendfile: bool,
    /// Set `SO_REUSEPORT` on the TCP listeners (`--reuse-port`).
    pub reuse_port: bool,
    /// Detach from the terminal (`-D/--daemon`).
    pub daemon: bool,
    /// With `--daemon`, keep stdout/stderr unless they are a terminal
    /// (`-R/--enable-stdio-inheritance`).
    pub enable_stdio_inheritance: bool,
    /// User the workers switch to (`-u/--user`), a name or a uid.
    pub user: Option<String>,
    /// Group the workers switch to (`-g/--group`), a name or a gid.
    pub group: Option<String>,
    /// File mode creation mask (`-m/--umask`); unchanged when `None`.
    pub umask: Option<u32>,
    /// Give the workers the user's supplementary groups (`--initgroups`).
    pub initgroups: bool,
    /// Accepted and unused (`--worker-tmp-dir`): the heartbeat is in shared memory.
    pub worker_tmp_dir: Option<String>,
    /// Seconds a request may run before its worker is replaced
    /// (`--request-timeout`); 0 disables.
    pub request_timeout: u64,
    /// Import the app in the master before forking (`--preload`).
    pub preload_app: bool,
    /// Resident memory in MB past which a worker is replaced (`--max-worker-memory`);
    /// 0 disables.
    pub max_worker_memory: u64,
    /// Seconds to wait for the next request on a keep-alive connection (`--keep-alive`).
    pub keepalive: u64,
    /// Maximum request line length in bytes (`--limit-request-line`), 0..=8190
    /// (larger values are lowered to 8190, as gunicorn does); 0 means unlimited.
    pub limit_request_line: usize,
    /// Maximum number of request header fields (`--limit-request-fields`),
    /// at most 32768; gunicorn's 0 and larger values resolve to that maximum.
    pub limit_request_fields: usize,
    /// Maximum size of one request header field (`--limit-request-field_size`);
    /// gunicorn's 0 resolves to its default, 8190.
    pub limit_request_field_size: usize,
    /// Directory to change to before loading the app (`--chdir`), absolute;
    /// default: the current directory.
    pub chdir: PathBuf,
    /// Directories to add to the Python path (`--pythonpath`, comma-separated).
    pub pythonpath: Vec<PathBuf>,
    /// Environment variables to set in workers (`-e/--env KEY=VALUE`).
    pub raw_env: Vec<(String, String)>,
    /// PID file to write (`-p/--pid`).
    pub pidfile: Option<PathBuf>,
    /// Process name base for `ps`/`top` (`-n/--name`).
    pub proc_name: Option<String>,
    /// Access log file (`--access-logfile`); `-` is stdout; `None` disables.
    pub accesslog: Option<String>,
    /// Access log line format (`--access-logformat`), gunicorn's `%(x)s` syntax.
    pub access_log_format: String,
    /// Error log file (`--error-logfile`/`--log-file`); `-` is stderr.
    pub errorlog: String,
    /// Error log level (`--log-level`).
    pub loglevel: LogLevel,
    /// Send the workers' stdout/stderr to the error log file (`--capture-output`).
    pub capture_output: bool,
    /// Python logging configuration (`--log-config`, `--log-config-json`,
    /// `logconfig_dict`).
    pub logconfig: LogConfig,
    /// Check the configuration and exit (`--check-config`).
    pub check_config: bool,
    /// Print the resolved configuration and exit (`--print-config`); implies `check_config`.
    pub print_config: bool,
    /// Peers trusted to set secure-scheme and forwarder headers (`--forwarded-allow-ips`).
    pub forwarded_allow_ips: AllowList,
    /// Header/value pairs that mark a request as HTTPS when sent by a trusted
    /// peer; header names upper-cased, sorted.
    pub secure_scheme_headers: Vec<(String, String)>,
    /// Environ keys a trusted forwarder may set through headers (`--forwarder-headers`).
    pub forwarder_headers: Vec<String>,
    /// Which PROXY protocol header new connections may start with (`--proxy-protocol`).
    pub proxy_protocol: ProxyProtocol,
    /// Peers allowed to send a PROXY protocol header (`--proxy-allow-from`).
    pub proxy_allow_ips: AllowList,
    /// Handling of header names that do not map cleanly into environ (`--header-map`).
    pub header_map: HeaderMap,
    /// Accept obsolete line folding in header values (`--permit-obsolete-folding`).
    pub permit_obsolete_folding: bool,
    /// Strip spaces between header names and `:` (`--strip-header-spaces`); unsafe.
    pub strip_header_spaces: bool,
    /// Accept methods outside the usual conventions (`--permit-unconventional-http-method`).
    pub permit_unconventional_http_method: bool,
    /// Accept HTTP versions other than 1.0/1.1 (`--permit-unconventional-http-version`).
    pub permit_unconventional_http_version: bool,
    /// Upper-case received HTTP methods (`--casefold-http-method`).
    pub casefold_http_method: bool,
    /// Seconds a client may take to send a full request head (`--header-timeout`; 408 after).
    pub header_timeout: u64,
    /// Seconds a request body may go without a byte arriving (`--body-timeout`; 408 after).
    pub body_timeout: u64,
    /// Seconds a response may go without the client taking a byte (`--send-timeout`).
    pub send_timeout: u64,
    /// Bytes of response a connection buffers for a slow reader (`--response-buffer`).
    pub response_buffer: u64,
    /// TLS certificate chain, PEM (`--certfile`); TLS is on when set.
    pub certfile: Option<PathBuf>,
    /// TLS private key, PEM (`--keyfile`).
    pub keyfile: Option<PathBuf>,
    /// CA certificates for client verification, PEM (`--ca-certs`).
    pub ca_certs: Option<PathBuf>,
    /// Client certificates: 0 none, 1 optional, 2 required (`--cert-reqs`).
    pub cert_reqs: u8,
    /// Allowed TLS cipher suites, colon-separated IANA/OpenSSL names (`--ciphers`).
    pub ciphers: Option<String>,
    /// TLS versions served (`--ssl-version`).
    pub ssl_version: SslVersion,
    /// Accepted for gunicorn compatibility (`--do-handshake-on-connect`): the
    /// handshake always runs on the event loop as soon as a connection is accepted.
    pub do_handshake_on_connect: bool,
    /// Accepted for gunicorn compatibility (`--suppress-ragged-eofs`): a TLS
    /// connection closed without `close_notify` is always just closed.
    pub suppress_ragged_eofs: bool,
    /// Protocols offered: `h1`, `h2` (`--http-protocols`).
    pub http_protocols: Vec<String>,
    /// HTTP/2 without TLS: `off` or `prior-knowledge` (`--http2-cleartext`).
    pub http2_cleartext: String,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 initial stream window size.
    pub http2_initial_window_size: u32,
    /// HTTP/2 SETTINGS_MAX_FRAME_SIZE.
    pub http2_max_frame_size: u32,
    /// HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE.
    pub http2_max_header_list_size: u32,
    /// The config file actually read, if any.
    pub config_file: Option<PathBuf>,
    /// Server hooks: (gunicorn hook name, `MODULE:CALLABLE`), from the config
    /// file or `FERRICORN_<HOOK>`; see [`Settings::hook`].
    pub hooks: Vec<(String, String)>,
    /// Metrics, health, control socket and log format settings.
    pub ops: Operability,
}

impl Settings {
    /// An empty starting point; every real default comes from the settings
    /// table's default layer, so nothing here is a user-visible value except
    /// `chdir`, which must be a path even before layers apply.
    pub(crate) fn blank(cwd: &Path) -> Self {
        Settings {
            wsgi_app: None,
            bind: Vec::new(),
            backlog: 0,
            workers: 0,
            worker_class: WorkerClass::Sync,
            worker_class_asgi: false,
            interface: String::new(),
            asgi_loop: String::new(),
            asgi_lifespan: String::new(),
            asgi_disconnect_grace_period: 0,
            root_path: String::new(),
            websocket_max_message_size: 0,
            websocket_ping_interval: 0,
            websocket_ping_timeout: 0,
            websocket_per_message_deflate: false,
            threads: 0,
            worker_connections: 0,
            timeout: 0,
            graceful_timeout: 0,
            max_requests: 0,
            max_requests_jitter: 0,
            max_worker_memory: 0,
            preload_app: false,
            daemon: false,
            reload: false,
            reload_extra_files: Vec::new(),
            reload_engine: ReloadEngine::Auto,
            sendfile: true,
            reuse_port: false,
            enable_stdio_inheritance: false,
            capture_output: false,
            ssl_version: SslVersion::Tls,
            do_handshake_on_connect: false,
            suppress_ragged_eofs: true,
            user: None,
            group: None,
            umask: None,
            initgroups: false,
            worker_tmp_dir: None,
            request_timeout: 0,
            keepalive: 0,
            limit_request_line: 0,
            limit_request_fields: 0,
            limit_request_field_size: 0,
            chdir: cwd.to_path_buf(),
            pythonpath: Vec::new(),
            raw_env: Vec::new(),
            pidfile: None,
            proc_name: None,
            accesslog: None,
            access_log_format: String::new(),
            errorlog: String::new(),
            loglevel: LogLevel::Info,
            logconfig: LogConfig::default(),
            check_config: false,
            print_config: false,
            forwarded_allow_ips: AllowList::default(),
            secure_scheme_headers: Vec::new(),
            forwarder_headers: Vec::new(),
            proxy_protocol: ProxyProtocol::Off,
            proxy_allow_ips: AllowList::default(),
            header_map: HeaderMap::Drop,
            permit_obsolete_folding: false,
            strip_header_spaces: false,
            permit_unconventional_http_method: false,
            permit_unconventional_http_version: false,
            casefold_http_method: false,
            header_timeout: 0,
            body_timeout: 0,
            send_timeout: 0,
            response_buffer: 0,
            certfile: None,
            keyfile: None,
            ca_certs: None,
            cert_reqs: 0,
            ciphers: None,
            http_protocols: Vec::new(),
            http2_cleartext: String::new(),
            http2_max_concurrent_streams: 0,
            http2_initial_window_size: 0,
            http2_max_frame_size: 0,
            http2_max_header_list_size: 0,
            config_file: None,
            hooks: Vec::new(),
            ops: Operability::default(),
        }
    }

    /// The `MODULE:CALLABLE` configured for the server hook `name`
    /// (gunicorn's hook names: `on_starting`, `pre_request`, …).
    pub fn hook(&self, name: &str) -> Option<&str> {
        self.hooks
            .iter()
            .find(|(hook, _)| hook == name)
            .map(|(_, spec)| spec.as_str())
    }
}
