//! `--log-syslog`: the error log (and, unless
//! `--disable-redirect-access-to-syslog`, the access log) also goes to
//! syslog, in the bytes Python's `SysLogHandler` sends for gunicorn:
//! `<PRI>gunicorn.<prefix>.<error|access>: [PID] MESSAGE` and a NUL, one
//! datagram (or stream write) per line, PRI = facility × 8 + severity.
//!
//! The socket is opened before the first fork and shared by the workers;
//! datagram sockets are non-blocking, so a full syslog buffer drops a line
//! rather than stalling a request.

use std::io::{self, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Mutex;

use ferricorn_config::{Syslog, SyslogAddr};

enum Socket {
    Udp(UdpSocket),
    UnixDgram(UnixDatagram),
    Stream(Box<dyn Write + Send>),
}

/// An open syslog destination.
pub struct SyslogSink {
    socket: Mutex<Socket>,
    facility: u8,
    error_tag: String,
    /// `None` with `--disable-redirect-access-to-syslog`.
    access_tag: Option<String>,
}

/// Syslog severities of gunicorn's levels.
#[derive(Clone, Copy)]
pub enum Severity {
    /// `CRITICAL`.
    Critical = 2,
    /// `ERROR`.
    Error = 3,
    /// `WARNING`.
    Warning = 4,
    /// `INFO`.
    Info = 6,
    /// `DEBUG`.
    Debug = 7,
}

impl SyslogSink {
    /// Connects to `settings.addr`. `name` is the process name, used as the
    /// prefix when `--log-syslog-prefix` is not set (gunicorn replaces its
    /// `:` with `.`).
    pub fn open(settings: &Syslog, name: &str) -> io::Result<Self> {
        let prefix = settings
            .prefix
            .clone()
            .unwrap_or_else(|| name.replace(':', "."));
        let socket = connect(&settings.addr).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("--log-syslog-to {}: {error}", settings.addr),
            )
        })?;
        Ok(Self {
            socket: Mutex::new(socket),
            facility: settings.facility,
            error_tag: format!("gunicorn.{prefix}.error"),
            access_tag: (!settings.disable_redirect_access)
                .then(|| format!("gunicorn.{prefix}.access")),
        })
    }

    /// Whether access lines go to syslog.
    pub fn takes_access(&self) -> bool {
        self.access_tag.is_some()
    }

    /// Sends an error-log line.
    pub fn error(&self, severity: Severity, message: &str) {
        self.send(&self.error_tag, severity, message);
    }

    /// Sends an access-log line (INFO), unless access lines are kept out.
    pub fn access(&self, message: &str) {
        if let Some(tag) = &self.access_tag {
            self.send(tag, Severity::Info, message);
        }
    }

    fn send(&self, tag: &str, severity: Severity, message: &str) {
        let priority = u32::from(self.facility) * 8 + severity as u32;
        let line = format!("<{priority}>{tag}: [{}] {message}\0", std::process::id());
        let Ok(mut socket) = self.socket.lock() else {
            return;
        };
        // A syslog that is down or full loses the line, as Python's handler
        // does; the log files still have it.
        let _ = match &mut *socket {
            Socket::Udp(s) => s.send(line.as_bytes()).map(drop),
            Socket::UnixDgram(s) => s.send(line.as_bytes()).map(drop),
            Socket::Stream(s) => s.write_all(line.as_bytes()),
        };
    }
}

fn connect(addr: &SyslogAddr) -> io::Result<Socket> {
    match addr {
        SyslogAddr::Udp { host, port } => {
            Ok(Socket::Udp(ferricorn_master::udp::connect(host, *port)?))
        }
        SyslogAddr::Tcp { host, port } => Ok(Socket::Stream(Box::new(TcpStream::connect((
            host.as_str(),
            *port,
        ))?))),
        SyslogAddr::Unix { path, dgram } => {
            // Python's SysLogHandler tries a datagram socket, then a stream.
            if *dgram != Some(false) {
                let socket = UnixDatagram::unbound()?;
                match socket.connect(path) {
                    Ok(()) => {
                        socket.set_nonblocking(true)?;
                        return Ok(Socket::UnixDgram(socket));
                    }
                    Err(error) if *dgram == Some(true) => return Err(error),
                    Err(_) => {}
                }
            }
            Ok(Socket::Stream(Box::new(UnixStream::connect(path)?)))
        }
    }
}
