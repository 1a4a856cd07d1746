//! Property-style tests on pseudo-random input: no panics, and piecewise
//! parsing always agrees with whole parsing.

use ferricorn_http::proxy::parse_proxy_header;
use ferricorn_http::{
    parse_request_head, ChunkedDecoder, HeaderMapPolicy, HttpError, Parsed, ParserOptions,
    RequestHeadParser,
};

/// xorshift64*: tiny, deterministic, good enough to explore inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALPHABET: &[u8] = b"GETPOSHTP/1.0 \r\n\t:;=\"\\,_-*?#@abcxyz0123456789fF\x00\x7f\x80\xff";

const SEEDS: &[&[u8]] = &[
    b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
    b"\r\nOPTIONS * HTTP/1.0\r\nX_Y: 1\r\nConnection: keep-alive\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n",
    b"GET http://h/p HTTP/1.1\r\nHost : x\r\n\r\n",
];

const CHUNK_SEEDS: &[&[u8]] = &[
    b"5\r\nhello\r\n0\r\n\r\n",
    b"3;a=b;c=\"d\\\"e\"\r\nabc\r\n0\r\nX: y\r\n\r\n",
    b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nGET",
];

/// Iteration count, scalable with `FERRICORN_FUZZ_SCALE` for longer local runs.
fn iterations(base: usize) -> usize {
    let scale = std::env::var("FERRICORN_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    base * scale
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(120);
    (0..len)
        .map(|_| {
            if rng.below(4) == 0 {
                rng.next() as u8
            } else {
                *rng.pick(ALPHABET)
            }
        })
        .collect()
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if at < v.len() => v[at] = *rng.pick(ALPHABET),
            1 => v.insert(at, *rng.pick(ALPHABET)),
            2 if at < v.len() => {
                v.remove(at);
            }
            3 => {
                let end = (at + rng.below(12)).min(v.len());
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            _ if at < v.len() => v[at] = rng.next() as u8,
            _ => {}
        }
    }
    v
}

fn option_sets() -> Vec<ParserOptions> {
    vec![
        ParserOptions::default(),
        ParserOptions {
            limit_request_line: 20,
            limit_request_fields: 2,
            limit_request_field_size: 16,
            ..Default::default()
        },
        ParserOptions {
            permit_obsolete_folding: true,
            strip_header_spaces: true,
            permit_unconventional_http_method: true,
            permit_unconventional_http_version: true,
            casefold_http_method: true,
            header_map: HeaderMapPolicy::Dangerous,
            limit_request_line: 0,
            limit_request_fields: 0,
            limit_request_field_size: 0,
        },
        ParserOptions {
            header_map: HeaderMapPolicy::Refuse,
            ..Default::default()
        },
    ]
}

fn key(r: &Result<Parsed, HttpError>) -> String {
    match r {
        Ok(p) => format!("{p:?}"),
        Err(e) => format!("{} {}", e.status, e.detail),
    }
}

fn check_request(input: &[u8], opts: &ParserOptions) {
    let whole = parse_request_head(input, opts);
    if let Ok(Parsed::Complete { consumed, .. }) = &whole {
        assert!(*consumed <= input.len());
    }
    if let Err(e) = &whole {
        let resp = e.to_response();
        assert!(resp.starts_with(b"HTTP/1.1 "));
    }
    // The first decisive prefix must give the whole verdict (with `consumed`
    // equal to the prefix length when complete).
    let mut resumable = RequestHeadParser::new();
    for n in 0..=input.len() {
        let prefix = &input[..n];
        let a = parse_request_head(prefix, opts);
        let b = resumable.parse(prefix, opts);
        assert_eq!(
            key(&a),
            key(&b),
            "resumable differs on {:?}",
            prefix.escape_ascii().to_string()
        );
        match a {
            Ok(Parsed::Partial) => {}
            Ok(Parsed::Complete { consumed, .. }) => {
                assert_eq!(consumed, n);
                let whole_key = match &whole {
                    Ok(Parsed::Complete { head, consumed }) => format!(
                        "{:?}",
                        Parsed::Complete {
                            head: head.clone(),
                            consumed: *consumed
                        }
                    ),
                    other => key(other),
                };
                assert_eq!(
                    key(&a),
                    whole_key,
                    "input {:?}",
                    input.escape_ascii().to_string()
                );
                return;
            }
            Err(_) => {
                assert_eq!(
                    key(&a),
                    key(&whole),
                    "input {:?}",
                    input.escape_ascii().to_string()
                );
                return;
            }
        }
    }
    assert!(matches!(whole, Ok(Parsed::Partial)));
}

fn check_chunked(input: &[u8]) {
    let mut whole_out = Vec::new();
    let whole = ChunkedDecoder::new().decode(input, &mut whole_out);
    if let Ok((used, _)) = whole {
        assert!(used <= input.len());
    }
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut total = 0;
    let mut result = Ok((0, false));
    for b in input {
        match dec.decode(std::slice::from_ref(b), &mut out) {
            Ok((used, done)) => {
                total += used;
                result = Ok((total, done));
                if done {
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    match (&whole, &result) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert_eq!(whole_out, out);
        }
        (Err(a), Err(b)) => assert_eq!((a.status, &a.detail), (b.status, &b.detail)),
        _ => panic!(
            "{:?}: {whole:?} vs {result:?}",
            input.escape_ascii().to_string()
        ),
    }
}

#[test]
fn random_requests_never_panic_and_agree() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opts = option_sets();
    for i in 0..iterations(3000) {
        let input = if i % 2 == 0 {
            random_bytes(&mut rng)
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed)
        };
        for o in &opts {
            check_request(&input, o);
        }
    }
}

#[test]
fn random_chunked_bodies_never_panic_and_agree() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..iterations(5000) {
        let input = if i % 2 == 0 {
            random_bytes(&mut rng)
        } else {
            let seed = CHUNK_SEEDS[rng.below(CHUNK_SEEDS.len())];
            mutate(&mut rng, seed)
        };
        check_chunked(&input);
    }
}

#[test]
fn random_proxy_headers_never_panic() {
    let mut rng = Rng(0x0bad_cafe_f00d_beef);
    let seeds: [&[u8]; 3] = [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r\n",
        b"PROXY TCP6 ::1 ::2 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x50\x01\xbb",
    ];
    for i in 0..iterations(5000) {
        let input = if i % 2 == 0 {
            random_bytes(&mut rng)
        } else {
            let seed = seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        for n in 0..=input.len() {
            let _ = parse_proxy_header(&input[..n]);
        }
    }
}
