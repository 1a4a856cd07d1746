//! Rust-only hello world: the ceiling ferricorn's Python workers are
//! measured against. Usage: `hello-rs ADDR WORKERS`.
//!
//! Binds one listener, forks WORKERS processes that share it (as
//! ferricorn's master does), and in each runs a current-thread tokio loop
//! that answers every request head with a fixed 13-byte response,
//! keeping connections alive. The parent waits for its children and
//! stops them when it gets SIGTERM or SIGINT.

use std::io::ErrorKind;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: hello-rs\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let listener = std::net::TcpListener::bind(&addr).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");

    let mut children = Vec::new();
    for _ in 0..workers {
        // SAFETY: single-threaded here; the child only builds its own runtime.
        match unsafe { libc::fork() } {
            0 => {
                // Die with the parent.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
                serve(listener);
                std::process::exit(0);
            }
            -1 => panic!("fork failed"),
            pid => children.push(pid),
        }
    }
    eprintln!("hello-rs: {workers} workers on {addr}");
    // Forward TERM/INT to the children by waiting for any of them to exit;
    // run.sh kills the whole process group anyway.
    for pid in children {
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

fn serve(listener: std::net::TcpListener) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener).expect("register");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => tokio::task::yield_now().await,
            }
        }
    });
}

async fn connection(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(8192);
    loop {
        // Answer every complete head in the buffer (pipelining-safe).
        while let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            buf.drain(..end + 4);
            if stream.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8192);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
