//! permessage-deflate (RFC 7692) for ASGI WebSockets.
//!
//! tungstenite 0.30 has no extension support (it refuses frames with RSV1
//! set), so this module sits in front of it: [`Inbound`] splits what the
//! client sent into frames, inflates compressed messages itself (bounded
//! by `--websocket-max-message-size`, so a deflate bomb gets 1009 and never
//! more than the limit in memory) and passes every other frame through to
//! tungstenite unchanged, in order. Outgoing messages are compressed into
//! frames with RSV1 set that tungstenite writes as they are.
//!
//! The server always answers with `server_no_context_takeover` (RFC 7692
//! §7.1.1.1 lets it): every message is compressed from a fresh window, so
//! one compressor per I/O thread serves every connection and 1,000 open
//! WebSockets do not each hold a ~250 KiB deflate state. Offers this
//! implementation cannot honour (`server_max_window_bits` below 15: the
//! compressor's window is fixed at 32 KiB; unknown or repeated parameters)
//! are declined, and the next offer, or none, is taken.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The tail a sync flush ends with, removed before sending (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The piece (de)compressed at once.
const CHUNK: usize = 64 * 1024;

/// What the client agreed to, from the offer taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The client resets its compressor after every message.
    pub(crate) client_no_context_takeover: bool,
}

/// The first permessage-deflate offer in `headers` that can be honoured,
/// and the `Sec-WebSocket-Extensions` value that accepts it.
pub(crate) fn negotiate(headers: &[(String, Vec<u8>)]) -> Option<(Agreed, String)> {
    let offers = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','));
    for offer in offers {
        let mut parts = offer.split(';').map(str::trim);
        if !parts
            .next()
            .is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate"))
        {
            continue;
        }
        if let Some(agreed) = accept(parts) {
            let mut answer = "permessage-deflate; server_no_context_takeover".to_string();
            if agreed.client_no_context_takeover {
                answer.push_str("; client_no_context_takeover");
            }
            return Some((agreed, answer));
        }
    }
    None
}

/// The offer's parameters, if all of them can be honoured.
fn accept<'a>(params: impl Iterator<Item = &'a str>) -> Option<Agreed> {
    let mut agreed = Agreed::default();
    let mut seen: Vec<&str> = Vec::new();
    for param in params {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        if seen.contains(&key) {
            return None;
        }
        seen.push(key);
        let bits = |v: Option<&str>| {
            v.and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
        };
        match (key, value) {
            ("server_no_context_takeover", None) => {}
            ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
            // The compressor's window cannot be made smaller than 32 KiB.
            ("server_max_window_bits", v) if bits(v) == Some(15) => {}
            // Inflating takes any window up to 32 KiB: nothing to answer.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", v) if bits(v).is_some() => {}
            _ => return None,
        }
    }
    Some(agreed)
}

thread_local! {
    /// Every connection's compressor (each message starts from a fresh
    /// window, see the module comment).
    static COMPRESS: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
}

/// `data` compressed as one permessage-deflate message payload.
pub(crate) fn compress(data: &[u8]) -> Vec<u8> {
    COMPRESS.with(|cell| {
        let mut c = cell.borrow_mut();
        c.reset();
        let mut out = Vec::with_capacity(data.len() / 2 + 16);
        let mut chunk = vec![0u8; CHUNK.min(data.len() + 64)];
        loop {
            let done_in = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let before = c.total_out();
            let input = data.get(done_in..).unwrap_or_default();
            if c.compress(input, &mut chunk, FlushCompress::Sync).is_err() {
                break;
            }
            let wrote = usize::try_from(c.total_out() - before).unwrap_or(0);
            out.extend_from_slice(&chunk[..wrote]);
            // The sync flush is complete once all input is in and the
            // output did not fill the chunk.
            if usize::try_from(c.total_in()).unwrap_or(usize::MAX) >= data.len()
                && wrote < chunk.len()
            {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        out
    })
}

/// Why a compressed message could not be inflated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// Larger than the limit once inflated (close 1009).
    TooBig,
    /// Not valid deflate data (close 1002).
    Corrupt,
}

/// One connection's decompressor; the window carries over between
/// messages unless the client agreed not to use it.
pub(crate) struct Inflater {
    state: Option<Decompress>,
    agreed: Agreed,
    /// Largest message (0: none).
    max: usize,
}

impl Inflater {
    /// An inflater for a connection that agreed `agreed`; made on first use.
    pub(crate) fn new(agreed: Agreed, max: usize) -> Self {
        Self {
            state: None,
            agreed,
            max,
        }
    }

    /// One message's payload inflated, stopping as soon as it passes the
    /// limit.
    pub(crate) fn inflate(&mut self, mut payload: Vec<u8>) -> Result<Vec<u8>, InflateError> {
        let limit = if self.max == 0 { usize::MAX } else { self.max };
        payload.extend_from_slice(&TAIL);
        let d = self.state.get_or_insert_with(|| Decompress::new(false));
        let start = d.total_in();
        let mut out = Vec::new();
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let done_in = usize::try_from(d.total_in() - start).unwrap_or(usize::MAX);
            let before = d.total_out();
            let input = payload.get(done_in..).unwrap_or_default();
            let status = d
                .decompress(input, &mut chunk, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let wrote = usize::try_from(d.total_out() - before).unwrap_or(0);
            if out.len().saturating_add(wrote) > limit {
                self.state = None;
                return Err(InflateError::TooBig);
            }
            out.extend_from_slice(&chunk[..wrote]);
            let all_in =
                usize::try_from(d.total_in() - start).unwrap_or(usize::MAX) >= payload.len();
            if status == Status::StreamEnd || (all_in && wrote < chunk.len()) {
                break;
            }
            if wrote == 0 && usize::try_from(d.total_in() - start).unwrap_or(0) == done_in {
                return Err(InflateError::Corrupt);
            }
        }
        if self.agreed.client_no_context_takeover {
            d.reset(false);
        }
        Ok(out)
    }
}

/// What the next complete frame from the client means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A frame for tungstenite, as it came.
    Pass(Vec<u8>),
    /// A whole compressed message, inflated.
    Message {
        /// A text message (its UTF-8 is checked).
        text: bool,
        /// The inflated payload.
        data: Vec<u8>,
    },
    /// Close the connection with this code and reason.
    Fail(u16, &'static str),
}

/// The client's bytes, split into frames, on a connection that agreed to
/// permessage-deflate.
pub(crate) struct Inbound {
    raw: Vec<u8>,
    /// The compressed message being reassembled: text?, payload so far.
    compressed: Option<(bool, Vec<u8>)>,
    /// An uncompressed fragmented message is open (tungstenite's).
    plain_open: bool,
    inflater: Inflater,
    max: usize,
}

impl Inbound {
    /// The splitter, starting with the bytes read after the handshake.
    pub(crate) fn new(leftover: Vec<u8>, agreed: Agreed, max: usize) -> Self {
        Self {
            raw: leftover,
            compressed: None,
            plain_open: false,
            inflater: Inflater::new(agreed, max),
            max,
        }
    }

    /// More bytes from the socket.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// The next step, or None until more bytes come.
    pub(crate) fn next(&mut self) -> Option<Step> {
        loop {
            let (header, len) = frame_bounds(&self.raw)?;
            let total = header.checked_add(usize::try_from(len).ok()?)?;
            let limit = if self.max == 0 {
                u64::MAX
            } else {
                self.max as u64
            };
            if len > limit {
                return Some(Step::Fail(1009, "message too big"));
            }
            if self.raw.len() < total {
                return None;
            }
            let b0 = self.raw[0];
            let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f);
            let control = opcode & 0x08 != 0;
            let ours = !control && (self.compressed.is_some() || (opcode != 0 && rsv1));
            if !ours {
                if !control {
                    self.plain_open = !fin;
                }
                let frame: Vec<u8> = self.raw.drain(..total).collect();
                return Some(Step::Pass(frame));
            }
            let masked = self.raw[1] & 0x80 != 0;
            let new_message = opcode != 0;
            if !masked
                || b0 & 0x30 != 0
                || (new_message && (self.compressed.is_some() || self.plain_open))
                || (!new_message && rsv1)
                || (new_message && opcode > 2)
            {
                return Some(Step::Fail(1002, "protocol error"));
            }
            let key = [
                self.raw[header - 4],
                self.raw[header - 3],
                self.raw[header - 2],
                self.raw[header - 1],
            ];
            let (_, payload) = self
                .compressed
                .get_or_insert_with(|| (opcode == 1, Vec::new()));
            if payload.len() as u64 + len > limit {
                return Some(Step::Fail(1009, "message too big"));
            }
            payload.extend(
                self.raw[header..total]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[i % 4]),
            );
            self.raw.drain(..total);
            if !fin {
                continue;
            }
            let (text, payload) = self.compressed.take()?;
            return Some(match self.inflater.inflate(payload) {
                Ok(data) if text && std::str::from_utf8(&data).is_err() => {
                    Step::Fail(1007, "invalid UTF-8")
                }
                Ok(data) => Step::Message { text, data },
                Err(InflateError::TooBig) => Step::Fail(1009, "message too big"),
                Err(InflateError::Corrupt) => Step::Fail(1002, "invalid compressed data"),
            });
        }
    }
}

/// The header length and payload length of the frame `raw` starts with,
/// once its header is complete.
fn frame_bounds(raw: &[u8]) -> Option<(usize, u64)> {
    let b1 = *raw.get(1)?;
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    match b1 & 0x7f {
        126 => {
            let bytes = raw.get(2..4)?;
            Some((
                4 + mask,
                u64::from(u16::from_be_bytes([bytes[0], bytes[1]])),
            ))
        }
        127 => {
            let bytes: [u8; 8] = raw.get(2..10)?.try_into().ok()?;
            Some((10 + mask, u64::from_be_bytes(bytes)))
        }
        n => Some((2 + mask, u64::from(n))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(value: &str) -> Option<(Agreed, String)> {
        negotiate(&[("Sec-WebSocket-Extensions".into(), value.as_bytes().to_vec())])
    }

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let key = [1u8, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    #[test]
    fn negotiation_takes_what_it_can_honour() {
        let (agreed, answer) = offer("permessage-deflate; client_max_window_bits").unwrap();
        assert!(!agreed.client_no_context_takeover);
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
        let (agreed, answer) =
            offer("permessage-deflate; client_no_context_takeover; server_max_window_bits=15")
                .unwrap();
        assert!(agreed.client_no_context_takeover);
        assert!(answer.ends_with("; client_no_context_takeover"));
        // A smaller server window cannot be honoured: that offer is
        // declined and the next one taken.
        assert!(offer("permessage-deflate; server_max_window_bits=10").is_none());
        assert!(
            offer("permessage-deflate; server_max_window_bits=10, permessage-deflate").is_some()
        );
        assert!(offer("permessage-deflate; x=1").is_none());
        assert!(offer("permessage-deflate; client_max_window_bits=16").is_none());
        assert!(offer(
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        )
        .is_none());
        assert!(offer("x-webkit-deflate-frame").is_none());
    }

    #[test]
    fn compressed_messages_round_trip_even_fragmented() {
        let text = "hello hello hello hello ".repeat(100);
        let packed = compress(text.as_bytes());
        assert!(packed.len() < text.len() / 5);
        let (a, b) = packed.split_at(packed.len() / 2);
        let mut wire = frame(0x41, a); // text, RSV1, not final
        wire.extend(frame(0x89, b"ping")); // a control frame in between
        wire.extend(frame(0x80, b)); // final continuation
        wire.extend(frame(0x81, b"plain")); // an uncompressed message
        let mut inbound = Inbound::new(Vec::new(), Agreed::default(), 1 << 20);
        inbound.push(&wire[..3]);
        assert_eq!(inbound.next(), None);
        inbound.push(&wire[3..]);
        assert_eq!(inbound.next(), Some(Step::Pass(frame(0x89, b"ping"))));
        assert_eq!(
            inbound.next(),
            Some(Step::Message {
                text: true,
                data: text.into_bytes()
            })
        );
        assert_eq!(inbound.next(), Some(Step::Pass(frame(0x81, b"plain"))));
        assert_eq!(inbound.next(), None);
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_limit() {
        let bomb = compress(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100 << 10, "{}", bomb.len());
        let mut inflater = Inflater::new(Agreed::default(), 1 << 20);
        assert_eq!(inflater.inflate(bomb), Err(InflateError::TooBig));
        let mut inflater = Inflater::new(Agreed::default(), 1 << 20);
        assert_eq!(inflater.inflate(vec![0xff; 16]), Err(InflateError::Corrupt));
    }

    #[test]
    fn context_carries_over_between_client_messages() {
        // A client keeping its window: the second message refers back to
        // the first.
        let mut c = Compress::new(Compression::default(), false);
        let mut packets = Vec::new();
        for _ in 0..2 {
            let mut out = Vec::with_capacity(1024);
            c.compress_vec(b"abcdefghij abcdefghij", &mut out, FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - 4);
            packets.push(out);
        }
        let mut inflater = Inflater::new(Agreed::default(), 1024);
        for packet in packets {
            assert_eq!(inflater.inflate(packet).unwrap(), b"abcdefghij abcdefghij");
        }
    }

    #[test]
    fn protocol_errors() {
        // BTYPE 11 is reserved: not deflate data.
        let mut inbound = Inbound::new(frame(0xC1, &[0xff; 4]), Agreed::default(), 1024);
        assert_eq!(
            inbound.next(),
            Some(Step::Fail(1002, "invalid compressed data"))
        );
        let mut inbound = Inbound::new(
            [frame(0x41, b"x"), frame(0x81, b"y")].concat(),
            Agreed::default(),
            1024,
        );
        assert_eq!(inbound.next(), Some(Step::Fail(1002, "protocol error")));
        let mut inbound = Inbound::new(frame(0xC1, &[0u8; 2000]), Agreed::default(), 1024);
        assert_eq!(inbound.next(), Some(Step::Fail(1009, "message too big")));
    }
}
