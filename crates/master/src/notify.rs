//! systemd's readiness protocol (`sd_notify`): datagrams such as `READY=1`
//! sent to the unix socket named by `NOTIFY_SOCKET`. Written directly; a
//! missing or unreachable socket is not an error (ferricorn may well run
//! outside systemd).

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1"`) to `$NOTIFY_SOCKET`, if set.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket: systemd writes its leading NUL as '@'.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(error) = sent {
        tracing::debug!("sd_notify {state:?} failed: {error}");
    }
}
