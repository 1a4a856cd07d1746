//! Sans-I/O decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! The decoder is a byte-level state machine, so input may be split anywhere
//! across calls without buffering. It decodes in place: chunk data is moved
//! to the front of the caller's buffer, so no second buffer is needed.
//! The grammar and limits are gunicorn 27's (`gunicorn/http/body.py`).

use crate::token::{is_field_value_byte, is_ows, is_tchar};
use crate::HttpError;

/// Bound on a chunk-size line including extensions (gunicorn's default
/// `limit_request_field_size`): extensions carry nothing we use, and
/// unbounded ones let a client burn CPU without sending a body.
const MAX_SIZE_LINE: usize = 8190;
/// Bound on one trailer line (gunicorn's default field size).
const MAX_TRAILER_LINE: usize = 8190;
/// Bound on the number of trailer fields (gunicorn's default field count).
const MAX_TRAILERS: usize = 100;
/// Bound on the whole trailer section (gunicorn's default, 32 field sizes).
const MAX_TRAILER_SECTION: usize = 8190 * 32;
/// Fields that must not appear in trailers because they change routing,
/// framing or authentication (RFC 9110 §6.5.1; gunicorn's list).
const FORBIDDEN_TRAILERS: [&[u8]; 6] = [
    b"host",
    b"content-length",
    b"transfer-encoding",
    b"trailer",
    b"authorization",
    b"te",
];
/// The longest name in [`FORBIDDEN_TRAILERS`]; longer names are allowed.
const FORBIDDEN_NAME_MAX: usize = 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size,
    /// After the size: BWS, then ';' or CR.
    AfterSize,
    /// After ';': BWS, then the extension name.
    ExtNameStart,
    ExtName,
    /// Whitespace after an extension name: more, '=' or ';'.
    AfterExtName,
    /// After '=': BWS, then a token or quoted-string.
    ExtValueStart,
    ExtValueToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After a closing quote: ';', CR or BWS before the next ';'.
    ExtQuotedEnd,
    /// Whitespace after an extension value: more, or ';'.
    AfterExtValue,
    /// CR of the size line seen, LF must follow.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Chunk data done, CR must follow.
    DataCr,
    DataLf,
    /// At the start of a trailer line or the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final empty line seen, LF must follow.
    FinalLf,
    Done,
}

/// Incremental chunked-body decoder; trailers are validated and discarded.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Chunk size while parsing it, then bytes of chunk data still to come.
    remaining: u64,
    size_digits: u8,
    /// Bytes of the current size or trailer line, for the line limits.
    line_len: usize,
    trailers: usize,
    /// Bytes of the trailer section so far.
    trailer_bytes: usize,
    /// The current trailer name, lower-cased, while it may still be one of
    /// [`FORBIDDEN_TRAILERS`].
    name: [u8; FORBIDDEN_NAME_MAX],
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn bad(detail: &'static str) -> HttpError {
    HttpError::bad_request(detail)
}

impl ChunkedDecoder {
    /// A decoder positioned at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            remaining: 0,
            size_digits: 0,
            line_len: 0,
            trailers: 0,
            trailer_bytes: 0,
            name: [0; FORBIDDEN_NAME_MAX],
        }
    }

    /// Whether the terminating chunk, trailers and final CRLF have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `buf` in place: chunk data is moved to the front of `buf`.
    ///
    /// Returns `(consumed, produced)`: `buf[..produced]` is body data and
    /// `buf[consumed..]` was not looked at (`produced <= consumed`). Never
    /// consumes past the end of the body, so whatever follows (a pipelined
    /// request) stays in the caller's buffer. After an error the decoder
    /// must not be used again.
    pub fn decode_in_place(&mut self, buf: &mut [u8]) -> Result<(usize, usize), HttpError> {
        let mut pos = 0;
        let mut produced = 0;
        while pos < buf.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - pos);
                buf.copy_within(pos..pos + take, produced);
                produced += take;
                pos += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let Some(&b) = buf.get(pos) else {
                break;
            };
            self.step(b)?;
            pos += 1;
        }
        Ok((pos, produced))
    }

    /// Decodes from `input`, appending body bytes to `out`; returns the
    /// bytes of `input` consumed and whether the body is complete. A
    /// convenience over [`ChunkedDecoder::decode_in_place`].
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        let start = out.len();
        out.extend_from_slice(input);
        let result = self.decode_in_place(&mut out[start..]);
        let produced = result.as_ref().map_or(0, |&(_, produced)| produced);
        out.truncate(start + produced);
        let (consumed, _) = result?;
        Ok((consumed, self.is_done()))
    }

    /// Advance the line-oriented states by one byte.
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        use State::*;
        if matches!(
            self.state,
            Size | AfterSize
                | ExtNameStart
                | ExtName
                | AfterExtName
                | ExtValueStart
                | ExtValueToken
                | ExtQuoted
                | ExtQuotedEscape
                | ExtQuotedEnd
                | AfterExtValue
        ) {
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                return Err(bad("chunk size line too long"));
            }
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf
        ) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > MAX_TRAILER_SECTION {
                return Err(too_large("trailer section too large"));
            }
        }
        self.state = match (self.state, b) {
            (Size, b) if b.is_ascii_hexdigit() => {
                // Any number of leading zeros is fine (gunicorn's int(size, 16));
                // a size that no longer fits in a u64 is not.
                if self.remaining >> 60 != 0 {
                    return Err(bad("chunk size too large"));
                }
                self.size_digits = self.size_digits.saturating_add(1);
                self.remaining = (self.remaining << 4) | u64::from(hex_value(b));
                Size
            }
            (Size, _) if self.size_digits == 0 => return Err(bad("invalid chunk size")),
            (Size | AfterSize, b' ' | b'\t') => AfterSize,
            (Size | AfterSize, b';') => ExtNameStart,
            (Size, b'\r') => SizeLf,
            (Size | AfterSize, _) => return Err(bad("invalid chunk size")),

            (ExtNameStart, b) if is_ows(b) => ExtNameStart,
            (ExtNameStart | ExtName, b) if is_tchar(b) => ExtName,
            (ExtNameStart, _) => return Err(bad("invalid chunk extension")),
            // RFC 9112 §7.1.1 allows BWS around ';' and '=' only: not at
            // the end of the line, as gunicorn's grammar says too.
            (ExtName | AfterExtName, b) if is_ows(b) => AfterExtName,
            (ExtName | AfterExtName, b'=') => ExtValueStart,
            (ExtName | AfterExtName | ExtValueToken | ExtQuotedEnd | AfterExtValue, b';') => {
                ExtNameStart
            }
            (ExtName | ExtValueToken | ExtQuotedEnd, b'\r') => SizeLf,
            (ExtName | AfterExtName, _) => return Err(bad("invalid chunk extension")),
            (ExtValueStart, b) if is_ows(b) => ExtValueStart,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart | ExtValueToken, b) if is_tchar(b) => ExtValueToken,
            (ExtValueStart, _) => return Err(bad("invalid chunk extension")),
            (ExtValueToken | ExtQuotedEnd | AfterExtValue, b) if is_ows(b) => AfterExtValue,
            (ExtValueToken | ExtQuotedEnd | AfterExtValue, _) => {
                return Err(bad("invalid chunk extension"))
            }
            (ExtQuoted, b'"') => ExtQuotedEnd,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted | ExtQuotedEscape, b) if is_field_value_byte(b) => ExtQuoted,
            (ExtQuoted | ExtQuotedEscape, _) => {
                return Err(bad("invalid quoted string in chunk extension"))
            }

            (SizeLf, b'\n') => {
                self.line_len = 0;
                self.size_digits = 0;
                if self.remaining == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(bad("chunk size line not terminated by CRLF")),

            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (DataCr | DataLf, _) => return Err(bad("chunk data not followed by CRLF")),

            (TrailerStart, b'\r') => FinalLf,
            (FinalLf, b'\n') => Done,
            (FinalLf, _) => return Err(bad("missing final CRLF after chunked body")),
            (TrailerStart, b) if is_tchar(b) => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(too_large("too many trailer fields"));
                }
                self.line_len = 1;
                self.push_name_byte(b);
                TrailerName
            }
            (TrailerStart, _) => return Err(bad("invalid trailer field")),
            (TrailerName | TrailerValue, _) if self.line_len >= MAX_TRAILER_LINE => {
                return Err(too_large("trailer field too long"))
            }
            (TrailerName, b) if is_tchar(b) => {
                self.push_name_byte(b);
                self.line_len += 1;
                TrailerName
            }
            (TrailerName, b':') => {
                let name = self.name.get(..self.line_len).unwrap_or_default();
                if FORBIDDEN_TRAILERS.contains(&name) {
                    return Err(bad("forbidden field in trailers"));
                }
                self.line_len += 1;
                TrailerValue
            }
            (TrailerName, _) => return Err(bad("invalid trailer field name")),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, b) if is_field_value_byte(b) => {
                self.line_len += 1;
                TrailerValue
            }
            (TrailerValue, _) => return Err(bad("invalid trailer field value")),
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerLf, _) => return Err(bad("trailer line not terminated by CRLF")),

            // decode_in_place() handles these without calling step().
            (Data | Done, _) => self.state,
        };
        Ok(())
    }

    /// Records byte `b` of a trailer name while it may be a forbidden one.
    fn push_name_byte(&mut self, b: u8) {
        // `line_len` is the index of `b` in the name (0 for the first byte).
        let index = if self.state == State::TrailerStart {
            0
        } else {
            self.line_len
        };
        if let Some(slot) = self.name.get_mut(index) {
            *slot = b.to_ascii_lowercase();
        }
    }
}

/// 431, as gunicorn answers a trailer section over its limits.
fn too_large(detail: &'static str) -> HttpError {
    HttpError::header_fields_too_large(detail)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}
