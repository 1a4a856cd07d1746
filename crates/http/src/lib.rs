//! Sans-I/O HTTP/1.1 codec for ferricorn.
//!
//! Parses request heads and bodies (Content-Length, chunked) from byte buffers and serializes
//! responses into byte buffers; it never touches sockets, so the worker can
//! drive it from any I/O model. Strictness follows gunicorn: anything
//! ambiguous that could enable request smuggling is rejected.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod chunked;
mod error;
pub mod proxy;
mod request;
pub mod response;
mod token;

pub use body::{BodyDecoder, Decoded};
pub use chunked::ChunkedDecoder;
pub use error::HttpError;
pub use request::{
    parse_request_head, BodyKind, Header, HeaderMapPolicy, Parsed, ParserOptions, RequestHead,
    RequestHeadParser, RequestLine, Version,
};
