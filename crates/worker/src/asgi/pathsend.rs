//! `http.response.pathsend`: opening the file, and on HTTP/1.x sending it
//! to the socket with `sendfile()` on plain TCP (unless `--no-sendfile`),
//! else read and written. HTTP/2 reads it with [`read_at`] as hyper pulls.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use tokio::io::Interest;

use crate::io::AsyncStream;

/// Largest piece read at once when copying.
pub(crate) const FILE_CHUNK: usize = 256 * 1024;

/// Opens the file an app asked to send: a regular file, and its length.
pub(crate) fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, meta.len()))
}

/// Fills `buf` with the file's bytes from `offset`, as far as one read
/// goes; a file that ends before (it shrank under us) is `UnexpectedEof`.
pub(crate) fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let offset = i64::try_from(offset).map_err(|_| io::Error::other("offset"))?;
    match nix::sys::uio::pread(file.as_fd(), buf, offset)? {
        0 if !buf.is_empty() => Err(io::ErrorKind::UnexpectedEof.into()),
        n => Ok(n),
    }
}

/// Sends `count` bytes of `file` from its start, each step bounded by
/// `io_timeout` (a client that stops reading fails the copy).
pub(crate) async fn send(
    stream: &mut AsyncStream,
    file: &File,
    count: u64,
    io_timeout: Duration,
) -> io::Result<()> {
    let mut offset = 0u64;
    if let (AsyncStream::Tcp(tcp), true) = (&*stream, crate::sendfile::enabled()) {
        while offset < count {
            let step = tcp.async_io(Interest::WRITABLE, || {
                let mut off = i64::try_from(offset).map_err(|_| io::Error::other("offset"))?;
                let left = usize::try_from((count - offset).min(1 << 30)).unwrap_or(1 << 30);
                nix::sys::sendfile::sendfile(tcp.as_fd(), file.as_fd(), Some(&mut off), left)
                    .map_err(io::Error::from)
            });
            match tokio::time::timeout(io_timeout, step).await {
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => offset += n as u64,
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
        return Ok(());
    }
    let mut buf = vec![0u8; FILE_CHUNK];
    while offset < count {
        let want = usize::try_from(count - offset)
            .unwrap_or(FILE_CHUNK)
            .min(FILE_CHUNK);
        let n = read_at(file, offset, &mut buf[..want])?;
        match tokio::time::timeout(io_timeout, stream.write_all(&buf[..n])).await {
            Ok(result) => result?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
        offset += n as u64;
    }
    Ok(())
}
