//! Sans-I/O decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! The decoder is a byte-level state machine, so input may be split anywhere
//! across calls without buffering; only chunk data is copied out.

use crate::token::{is_field_value_byte, is_ows, is_tchar};
use crate::HttpError;

/// More hex digits than this cannot be a u64 chunk size.
const MAX_SIZE_DIGITS: u8 = 16;
/// Bound on a chunk-size line including extensions: extensions carry nothing
/// we use, and unbounded ones let a client burn CPU without sending a body.
const MAX_SIZE_LINE: usize = 4096;
/// Bound on one trailer line (gunicorn's default field size).
const MAX_TRAILER_LINE: usize = 8190;
/// Bound on the number of trailer fields (gunicorn's default field count).
const MAX_TRAILERS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size,
    /// After the size: BWS, then ';' or CR.
    AfterSize,
    /// After ';': BWS, then the extension name.
    ExtNameStart,
    ExtName,
    /// After an extension name: BWS, then '=', ';' or CR.
    AfterExtName,
    /// After '=': BWS, then a token or quoted-string.
    ExtValueStart,
    ExtValueToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After an extension value: BWS, then ';' or CR.
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
        }
    }

    /// Whether the terminating chunk, trailers and final CRLF have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode from `input`, appending body bytes to `out`.
    ///
    /// Returns the number of bytes of `input` consumed and whether the body
    /// is complete. Never consumes past the end of the body, so whatever
    /// follows (a pipelined request) stays in the caller's buffer. After an
    /// error the decoder must not be used again.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Data {
                let rest = input.get(pos..).unwrap_or_default();
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                out.extend_from_slice(rest.get(..take).unwrap_or_default());
                pos += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let Some(&b) = input.get(pos) else {
                break;
            };
            self.step(b)?;
            pos += 1;
        }
        Ok((pos, self.is_done()))
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
                | AfterExtValue
        ) {
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                return Err(bad("chunk size line too long"));
            }
        }
        self.state = match (self.state, b) {
            (Size, b) if b.is_ascii_hexdigit() => {
                if self.size_digits == MAX_SIZE_DIGITS {
                    return Err(bad("chunk size too large"));
                }
                self.size_digits += 1;
                // Cannot overflow: at most 16 hex digits.
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
            (ExtName | AfterExtName, b) if is_ows(b) => AfterExtName,
            (ExtName | AfterExtName, b'=') => ExtValueStart,
            (ExtName | AfterExtName | ExtValueToken | AfterExtValue, b';') => ExtNameStart,
            (ExtName | AfterExtName | ExtValueToken | AfterExtValue, b'\r') => SizeLf,
            (ExtName | AfterExtName, _) => return Err(bad("invalid chunk extension")),
            (ExtValueStart, b) if is_ows(b) => ExtValueStart,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart | ExtValueToken, b) if is_tchar(b) => ExtValueToken,
            (ExtValueStart, _) => return Err(bad("invalid chunk extension")),
            (ExtValueToken | AfterExtValue, b) if is_ows(b) => AfterExtValue,
            (ExtValueToken | AfterExtValue, _) => return Err(bad("invalid chunk extension")),
            (ExtQuoted, b'"') => AfterExtValue,
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
                    return Err(bad("too many trailer fields"));
                }
                self.line_len = 1;
                TrailerName
            }
            (TrailerStart, _) => return Err(bad("invalid trailer field")),
            (TrailerName | TrailerValue, _) if self.line_len >= MAX_TRAILER_LINE => {
                return Err(bad("trailer field too long"))
            }
            (TrailerName, b) if is_tchar(b) => {
                self.line_len += 1;
                TrailerName
            }
            (TrailerName, b':') => {
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

            // decode() handles these without calling step().
            (Data | Done, _) => self.state,
        };
        Ok(())
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}
