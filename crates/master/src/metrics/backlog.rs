//! The accept-queue length of a TCP listener, from `TCP_INFO` (Linux): on a
//! listening socket `tcpi_unacked` is the current queue and `tcpi_sacked`
//! its limit (what gunicorn's `--enable-backlog-metric` reads).

use std::os::fd::RawFd;

/// `(queued, limit)` for the listener `fd`; `None` for non-TCP sockets.
pub fn queue(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: a zeroed tcp_info is a valid out-buffer, and getsockopt writes
    // at most `len` bytes into it; a wrong fd only makes the call fail.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
        let rc = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (rc == 0).then(|| (u64::from(info.tcpi_unacked), u64::from(info.tcpi_sacked)))
    }
}
