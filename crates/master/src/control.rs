//! The control socket: gunicorn 25.1's protocol (`gunicornc` works against
//! it), served from the master's poll loop without threads.
//!
//! A frame is a 4-byte big-endian length and that many bytes of UTF-8
//! JSON. A client sends `{"id", "command", "args"}` and gets back
//! `{"id", "status": "ok", "data"}` or `{"id", "status": "error",
//! "error"}`; several requests may share a connection. Everything here is
//! non-blocking and bounded (clients, frame size, idle time), so a
//! misbehaving client can cost the master nothing but a closed connection.
//! What a command does is up to the arbiter ([`ControlServer::poll`]
//! returns the requests; [`ControlServer::respond`] sends the answers).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Largest frame accepted (gunicorn allows 16 MiB; commands are tiny).
const MAX_FRAME: usize = 1024 * 1024;
/// Idle connections are closed after this long (gunicorn's).
const IDLE: Duration = Duration::from_secs(300);
/// Connections served at once; more are closed on arrival.
const MAX_CLIENTS: usize = 16;

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    /// Which connection it came on, for [`ControlServer::respond`].
    pub client: u64,
    /// The request id, echoed in the response.
    pub id: Value,
    /// The command split into words (shell rules), `args` appended.
    pub words: Vec<String>,
}

struct Client {
    token: u64,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    last_active: Instant,
    closing: bool,
}

/// The listening control socket and its connections.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    next_token: u64,
}

/// Why the control socket is not served.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another live server answers on the path; it is left alone.
    #[error("{0} is in use by another running server")]
    InUse(PathBuf),
    /// The directory, the socket or its mode could not be set up.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

impl ControlServer {
    /// Binds `path` with permission bits `mode`. The parent directory is
    /// created (0700) when missing; a stale socket file is replaced, but a
    /// path where a server still answers is never taken over. The socket is
    /// created under a umask that leaves it no wider than `mode`, so there
    /// is no window with looser permissions.
    pub fn bind(path: &Path, mode: u32) -> Result<Self, ControlError> {
        let io_error = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(io_error)?;
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io_error(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                )));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_error)?;
        }
        let tight = nix::sys::stat::Mode::from_bits_truncate(!mode & 0o777);
        let old = nix::sys::stat::umask(tight);
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = bound.map_err(io_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
        listener.set_nonblocking(true).map_err(io_error)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
            next_token: 0,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Descriptors the master's poll should watch, with whether each has
    /// output waiting (then it also waits for writability).
    pub fn poll_fds(&self) -> Vec<(RawFd, bool)> {
        let mut fds = vec![(self.listener.as_raw_fd(), false)];
        fds.extend(
            self.clients
                .iter()
                .map(|c| (c.stream.as_raw_fd(), !c.output.is_empty())),
        );
        fds
    }

    /// Accepts new connections, reads what arrived, flushes pending output
    /// and closes idle or broken connections; returns complete requests.
    pub fn poll(&mut self) -> Vec<Request> {
        self.accept();
        let mut requests = Vec::new();
        for client in &mut self.clients {
            flush(client);
            read_available(client);
            while let Some(frame) = next_frame(client) {
                match parse_request(&frame) {
                    Ok((id, words)) => requests.push(Request {
                        client: client.token,
                        id,
                        words,
                    }),
                    Err(reason) => {
                        let reply = json!({"id": 0, "status": "error", "error": reason});
                        queue(client, &reply);
                        client.closing = true;
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        self.clients.retain(|c| {
            let idle = now.duration_since(c.last_active) > IDLE;
            !(idle || c.closing && c.output.is_empty())
        });
        requests
    }

    /// Sends the answer to `request`: `Ok(data)` or `Err(message)`.
    pub fn respond(&mut self, request: &Request, result: Result<Value, String>) {
        let reply = match result {
            Ok(data) => json!({"id": request.id, "status": "ok", "data": data}),
            Err(error) => json!({"id": request.id, "status": "error", "error": error}),
        };
        if let Some(client) = self.clients.iter_mut().find(|c| c.token == request.client) {
            queue(client, &reply);
            flush(client);
        }
    }

    /// In a forked child: closes the master's control descriptors.
    pub fn close_in_child(&self) {
        let _ = nix::unistd::close(self.listener.as_raw_fd());
        for client in &self.clients {
            let _ = nix::unistd::close(client.stream.as_raw_fd());
        }
    }

    /// Removes the socket file (at exit).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.next_token += 1;
                    self.clients.push(Client {
                        token: self.next_token,
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        last_active: Instant::now(),
                        closing: false,
                    });
                }
                Err(ref e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

fn read_available(client: &mut Client) {
    let mut buf = [0u8; 4096];
    loop {
        match client.stream.read(&mut buf) {
            Ok(0) => {
                client.closing = true;
                return;
            }
            Ok(n) => {
                client.input.extend_from_slice(&buf[..n]);
                client.last_active = Instant::now();
                if client.input.len() > MAX_FRAME + 4 {
                    client.closing = true;
                    return;
                }
            }
            Err(ref e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                client.closing = true;
                client.output.clear();
                return;
            }
        }
    }
}

/// The next complete frame's payload, if one has arrived.
fn next_frame(client: &mut Client) -> Option<Vec<u8>> {
    if client.closing && client.input.is_empty() {
        return None;
    }
    let header: [u8; 4] = client.input.get(..4)?.try_into().ok()?;
    let length = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if length > MAX_FRAME {
        client.input.clear();
        client.closing = true;
        return None;
    }
    if client.input.len() < 4 + length {
        return None;
    }
    let frame = client.input[4..4 + length].to_vec();
    client.input.drain(..4 + length);
    Some(frame)
}

fn queue(client: &mut Client, reply: &Value) {
    let payload = reply.to_string().into_bytes();
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    client.output.extend_from_slice(&length.to_be_bytes());
    client.output.extend_from_slice(&payload);
}

fn flush(client: &mut Client) {
    while !client.output.is_empty() {
        match client.stream.write(&client.output) {
            Ok(0) => break,
            Ok(n) => {
                client.output.drain(..n);
                client.last_active = Instant::now();
            }
            Err(ref e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                client.output.clear();
                client.closing = true;
            }
        }
    }
}

/// `{"id", "command", "args"}` → the id and the words, as gunicorn's
/// dispatcher does (`shlex.split(command) + args`).
fn parse_request(frame: &[u8]) -> Result<(Value, Vec<String>), String> {
    let message: Value = serde_json::from_slice(frame).map_err(|e| format!("Invalid JSON: {e}"))?;
    let Value::Object(map) = message else {
        return Err("Invalid message: expected a JSON object".into());
    };
    let id = map.get("id").cloned().unwrap_or(json!(0));
    let command = map.get("command").and_then(Value::as_str).unwrap_or("");
    let mut words = split_words(command.trim());
    if let Some(Value::Array(args)) = map.get("args") {
        words.extend(args.iter().map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
    }
    Ok((id, words))
}

/// Splits like `shlex.split` for what commands use: whitespace-separated
/// words, with single or double quotes grouping.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for ch in text.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => current.push(ch),
            None if ch == '\'' || ch == '"' => {
                quote = Some(ch);
                in_word = true;
            }
            None if ch.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                current.push(ch);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Writes one request frame and reads the response (for `ferricorn ctl`).
pub fn call(stream: &mut UnixStream, id: u64, command: &str) -> io::Result<Value> {
    let request = json!({"id": id, "command": command, "args": []}).to_string();
    let length = u32::try_from(request.len()).map_err(io::Error::other)?;
    stream.write_all(&length.to_be_bytes())?;
    stream.write_all(request.as_bytes())?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let length = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if length > MAX_FRAME * 16 {
        return Err(io::Error::other("response too large"));
    }
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload)?;
    serde_json::from_slice(&payload).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_shlex() {
        assert_eq!(split_words("show  workers"), ["show", "workers"]);
        assert_eq!(split_words("a 'b c' \"d\""), ["a", "b c", "d"]);
        assert!(split_words("   ").is_empty());
    }

    #[test]
    fn a_live_socket_is_never_taken_over_and_frames_round_trip() {
        let dir = std::env::temp_dir().join(format!("ferricorn-ctl-{}", std::process::id()));
        let path = dir.join("sub").join("c.ctl");
        let mut server = ControlServer::bind(&path, 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            ControlServer::bind(&path, 0o600),
            Err(ControlError::InUse(_))
        ));
        let mut client = UnixStream::connect(&path).unwrap();
        let frame = br#"{"id": 7, "command": "worker add", "args": [2]}"#;
        client
            .write_all(&(frame.len() as u32).to_be_bytes())
            .unwrap();
        client.write_all(frame).unwrap();
        let mut requests = Vec::new();
        for _ in 0..100 {
            requests = server.poll();
            if !requests.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].words, ["worker", "add", "2"]);
        server.respond(&requests[0], Ok(json!({"added": 2})));
        let mut header = [0u8; 4];
        client.read_exact(&mut header).unwrap();
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        client.read_exact(&mut payload).unwrap();
        let reply: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            reply,
            json!({"id": 7, "status": "ok", "data": {"added": 2}})
        );
        drop(server);
        // A stale socket file (no server) is replaced.
        assert!(ControlServer::bind(&path, 0o600).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
