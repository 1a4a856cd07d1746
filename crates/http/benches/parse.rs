//! Hot-path micro-benchmarks of the HTTP codec: request-head parsing,
//! chunked-body decoding and response-head writing.
//!
//! `cargo bench -p ferricorn-http` (add `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferricorn_http::response::{
    encode_chunk, http_date, reason_phrase, write_header, write_status_line,
};
use ferricorn_http::{
    parse_request_head, ChunkedDecoder, Parsed, ParserOptions, RequestHeadParser, Version,
};

/// What wrk sends: the smallest realistic request.
const MINIMAL: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n";

/// A typical browser navigation (Chrome), 15 fields, 829 bytes.
const BROWSER: &[u8] = b"GET /articles/2024/rust-wsgi?page=2&sort=new HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Referer: https://www.example.com/articles/2024/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n\
Cookie: sessionid=8c1f0e2a9b7d4c3e; csrftoken=Zx81kQ0pLmN3vB7yT5rW2sD4fG6hJ9kL; theme=dark\r\n\
\r\n";

fn parse(c: &mut Criterion) {
    let opts = ParserOptions::default();
    let mut group = c.benchmark_group("parse_request_head");
    for (name, req) in [("minimal", MINIMAL), ("browser", BROWSER)] {
        group.throughput(Throughput::Bytes(req.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| match parse_request_head(black_box(req), &opts) {
                Ok(Parsed::Complete { head, consumed }) => (head, consumed),
                other => panic!("unexpected: {other:?}"),
            })
        });
    }
    // A head arriving in 64-byte reads: the resumable parser scans once.
    group.throughput(Throughput::Bytes(BROWSER.len() as u64));
    group.bench_function("browser_in_64B_reads", |b| {
        b.iter(|| {
            let mut parser = RequestHeadParser::new();
            let mut end = 0;
            loop {
                end = (end + 64).min(BROWSER.len());
                match parser.parse(black_box(&BROWSER[..end]), &opts) {
                    Ok(Parsed::Complete { head, .. }) => break head,
                    Ok(Parsed::Partial) => {}
                    Err(error) => panic!("{error}"),
                }
            }
        })
    });
    group.finish();
}

fn chunked_body(chunk: usize, total: usize) -> Vec<u8> {
    let data = vec![b'x'; chunk];
    let mut out = Vec::new();
    for _ in 0..total / chunk {
        encode_chunk(&mut out, &data);
    }
    out.extend_from_slice(b"0\r\nX-Checksum: abc\r\n\r\n");
    out
}

fn chunked(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked_decode");
    for (name, chunk) in [("64KiB_in_16B_chunks", 16), ("64KiB_in_4KiB_chunks", 4096)] {
        let body = chunked_body(chunk, 64 * 1024);
        group.throughput(Throughput::Bytes(64 * 1024));
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(64 * 1024);
            b.iter(|| {
                out.clear();
                let mut dec = ChunkedDecoder::new();
                let (used, done) = dec.decode(black_box(&body), &mut out).expect("valid");
                assert!(done && used == body.len());
            })
        });
        // The same body fed in 1,500-byte segments, as it comes off a socket.
        group.bench_function(format!("{name}_in_1500B_reads"), |b| {
            let mut out = Vec::with_capacity(64 * 1024);
            b.iter(|| {
                out.clear();
                let mut dec = ChunkedDecoder::new();
                for piece in body.chunks(1500) {
                    let mut rest = piece;
                    while !rest.is_empty() {
                        let (used, _) = dec.decode(black_box(rest), &mut out).expect("valid");
                        rest = &rest[used..];
                        if used == 0 {
                            break;
                        }
                    }
                }
                assert!(dec.is_done());
            })
        });
    }
    group.finish();
}

fn response(c: &mut Criterion) {
    let mut group = c.benchmark_group("response_head");
    let date = http_date(1_700_000_000);
    // What the worker writes for a hello-world WSGI response, into a reused buffer.
    group.bench_function("hello_head_reused_buf", |b| {
        let mut buf = Vec::with_capacity(256);
        b.iter(|| {
            buf.clear();
            write_status_line(&mut buf, Version::HTTP_11, 200, reason_phrase(200));
            write_header(&mut buf, "Server", "ferricorn");
            write_header(&mut buf, "Date", black_box(&date));
            write_header(&mut buf, "Connection", "keep-alive");
            write_header(&mut buf, "Content-Type", "text/plain");
            write_header(&mut buf, "Content-Length", "13");
            buf.extend_from_slice(b"\r\n");
            black_box(buf.len())
        })
    });
    group.bench_function("hello_head_fresh_buf", |b| {
        b.iter(|| {
            let mut buf = Vec::new();
            write_status_line(&mut buf, Version::HTTP_11, 200, reason_phrase(200));
            write_header(&mut buf, "Server", "ferricorn");
            write_header(&mut buf, "Date", black_box(&date));
            write_header(&mut buf, "Connection", "keep-alive");
            write_header(&mut buf, "Content-Type", "text/plain");
            write_header(&mut buf, "Content-Length", "13");
            buf.extend_from_slice(b"\r\n");
            buf
        })
    });
    group.bench_function("http_date", |b| {
        b.iter(|| http_date(black_box(1_700_000_000)))
    });
    group.bench_function("encode_chunk_4KiB", |b| {
        let data = vec![b'y'; 4096];
        b.iter_batched_ref(
            || Vec::with_capacity(4200),
            |buf| encode_chunk(buf, black_box(&data)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parse, chunked, response);
criterion_main!(benches);
