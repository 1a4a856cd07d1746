//! Request-head parsing: request line, header fields and body framing.

use crate::token::{is_field_value, is_ows, is_tchar, is_token, is_visible_ascii, trim_ows};
use crate::HttpError;

/// What to do with header names containing `_` (gunicorn's `header_map`).
///
/// Such names collide with `-` names once mapped to WSGI `HTTP_*` keys, so
/// a proxy-set header could be spoofed by the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderMapPolicy {
    /// Silently drop the header (gunicorn default).
    #[default]
    Drop,
    /// Reject the request with 400.
    Refuse,
    /// Keep the header as is.
    Dangerous,
}

/// Limits and leniency switches for [`parse_request_head`], mirroring gunicorn settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParserOptions {
    /// Maximum request-line length in bytes (excluding CRLF); 0 = unlimited.
    pub limit_request_line: usize,
    /// Maximum number of header fields. 0 means gunicorn's ceiling of 32768,
    /// which also caps larger values. Dropped `_` headers count too.
    pub limit_request_fields: usize,
    /// Maximum size of one header field in bytes, counted like gunicorn: the
    /// whole line including its CRLF, plus any obs-fold continuation lines;
    /// 0 = unlimited.
    pub limit_request_field_size: usize,
    /// Unfold obs-fold continuation lines instead of rejecting them.
    pub permit_obsolete_folding: bool,
    /// Strip whitespace between a header name and ':' instead of rejecting it.
    pub strip_header_spaces: bool,
    /// Accept any token as method (lowercase, '#', any length).
    pub permit_unconventional_http_method: bool,
    /// Accept HTTP/1.x versions other than 1.0 and 1.1.
    pub permit_unconventional_http_version: bool,
    /// Upper-case the method before validating it.
    pub casefold_http_method: bool,
    /// Handling of header names containing `_`.
    pub header_map: HeaderMapPolicy,
}

impl Default for ParserOptions {
    fn default() -> Self {
        ParserOptions {
            limit_request_line: 4094,
            limit_request_fields: 100,
            limit_request_field_size: 8190,
            permit_obsolete_folding: false,
            strip_header_spaces: false,
            permit_unconventional_http_method: false,
            permit_unconventional_http_version: false,
            casefold_http_method: false,
            header_map: HeaderMapPolicy::Drop,
        }
    }
}

/// An HTTP version number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major version digit.
    pub major: u8,
    /// Minor version digit.
    pub minor: u8,
}

impl Version {
    /// HTTP/1.0.
    pub const HTTP_10: Version = Version { major: 1, minor: 0 };
    /// HTTP/1.1.
    pub const HTTP_11: Version = Version { major: 1, minor: 1 };

    /// The protocol string, e.g. `"HTTP/1.1"`.
    ///
    /// The parser only produces single-digit versions; anything with a
    /// component above 9 cannot be spelled in HTTP/1 and renders as `"HTTP/1.1"`.
    pub fn as_str(&self) -> &'static str {
        match (self.major, self.minor) {
            (1, 1) => return "HTTP/1.1",
            (1, 0) => return "HTTP/1.0",
            (2, 0) => return "HTTP/2",
            (major, minor) if major > 9 || minor > 9 => return "HTTP/1.1",
            _ => {}
        }
        let index = usize::from(self.major) * 10 + usize::from(self.minor);
        VERSION_NAMES
            .get(index)
            .and_then(|name| std::str::from_utf8(name).ok())
            .unwrap_or("HTTP/1.1")
    }
}

/// `"HTTP/M.m"` for every single-digit version, indexed by `major * 10 + minor`,
/// so [`Version::as_str`] can hand out `'static` strings.
static VERSION_NAMES: [[u8; 8]; 100] = {
    let mut t = [*b"HTTP/0.0"; 100];
    let mut i = 0;
    while i < 100 {
        t[i][5] = b'0' + (i / 10) as u8;
        t[i][7] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// One header field as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Field name exactly as sent (a validated token).
    pub name: String,
    /// Field value with leading and trailing whitespace removed.
    pub value: Vec<u8>,
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// `Content-Length` body of exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked` body; see [`crate::BodyDecoder`].
    Chunked,
}

/// A parsed and validated request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method (upper-cased if `casefold_http_method`).
    pub method: String,
    /// Raw request-target exactly as sent (WSGI `RAW_URI`).
    pub target: Vec<u8>,
    /// Path component: no query or fragment; empty for an absolute-form URL
    /// without a path, `*` for asterisk-form, the authority (`host:port`)
    /// for authority-form (all as gunicorn 27 fills `PATH_INFO`).
    pub path: Vec<u8>,
    /// Everything after the first `?`, fragment removed.
    pub query: Vec<u8>,
    /// Protocol version.
    pub version: Version,
    /// Header fields in order, minus dropped `_` headers.
    pub headers: Vec<Header>,
    /// Body framing.
    pub body: BodyKind,
    /// Whether the connection may be reused after this request.
    pub keep_alive: bool,
    /// Whether the client sent `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
}

/// A request line, borrowed from its head: what the WSGI environ, the
/// access log and the request hooks read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// The method; empty when the request line was unreadable.
    pub method: &'a str,
    /// The target exactly as sent (WSGI `RAW_URI`).
    pub target: &'a [u8],
    /// The path as sent (still percent-encoded), without the query.
    pub path: &'a [u8],
    /// The query string, without the `?`.
    pub query: &'a [u8],
    /// `HTTP/1.1` and the like; empty when the request line was unreadable.
    pub version: &'a str,
}

impl RequestHead {
    /// The head's request line.
    pub fn line(&self) -> RequestLine<'_> {
        RequestLine {
            method: &self.method,
            target: &self.target,
            path: &self.path,
            query: &self.query,
            version: self.version.as_str(),
        }
    }

    /// Value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }
}

/// Outcome of [`parse_request_head`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A full head was parsed; `consumed` bytes (including the blank line) belong to it.
    Complete {
        /// The parsed head.
        head: RequestHead,
        /// Bytes of the buffer used by the head.
        consumed: usize,
    },
    /// More bytes are needed.
    Partial,
}

/// gunicorn's hard cap on header fields, applied when the limit is 0 or larger.
const MAX_HEADERS: usize = 32768;

/// Empty lines tolerated before the request line (RFC 9112 §2.2 asks servers
/// to ignore "at least one"); a small cap stops a client streaming CRLFs forever.
const MAX_LEADING_EMPTY_LINES: usize = 8;

/// Parse a request head from the start of `buf`.
///
/// Returns [`Parsed::Partial`] when more bytes are needed. Limits are
/// enforced on partial input too, so callers can bound their buffers: the
/// result of feeding a request in pieces is the same as parsing it whole,
/// and an over-long line is reported as soon as it is known to be too long.
///
/// Each call rescans `buf` from the start (without allocating while the head
/// is incomplete); [`RequestHeadParser`] resumes where the last call stopped.
pub fn parse_request_head(buf: &[u8], opts: &ParserOptions) -> Result<Parsed, HttpError> {
    // Every complete head ends in CRLF CRLF; without one, only validate, so
    // partial calls cost a scan and no allocations.
    if memchr::memmem::find(buf, b"\r\n\r\n").is_none() {
        let mut scan = Scan::default();
        if !scan.run(buf, opts, None)? {
            return Ok(Parsed::Partial);
        }
    }
    parse_complete(buf, opts)
}

/// Resumable form of [`parse_request_head`] for a buffer that only grows.
///
/// Remembers how far the previous call validated, so a head trickling in
/// over many reads is scanned once instead of once per read. Verdicts are
/// identical to [`parse_request_head`] on the same bytes.
#[derive(Clone, Debug, Default)]
pub struct RequestHeadParser {
    scan: Scan,
}

impl RequestHeadParser {
    /// A parser at the start of a request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse the head at the start of `buf`, which must begin with the same
    /// bytes as in the previous call (it may have grown). After
    /// [`Parsed::Complete`] the parser is reset for the next request, whose
    /// bytes the caller passes from the start of a new buffer slice.
    pub fn parse(&mut self, buf: &[u8], opts: &ParserOptions) -> Result<Parsed, HttpError> {
        if buf.len() < self.scan.pos {
            // The caller broke the "only grows" contract; start over rather than misparse.
            self.reset();
        }
        if !self.scan.run(buf, opts, None)? {
            return Ok(Parsed::Partial);
        }
        self.reset();
        parse_complete(buf, opts)
    }

    /// Forget any progress, e.g. after an error or when reusing the parser.
    pub fn reset(&mut self) {
        self.scan = Scan::default();
    }
}

/// Parse a head known (or likely) to be complete, building the result.
fn parse_complete(buf: &[u8], opts: &ParserOptions) -> Result<Parsed, HttpError> {
    let mut scan = Scan::default();
    let mut built = Built::default();
    if !scan.run(buf, opts, Some(&mut built))? {
        return Ok(Parsed::Partial);
    }
    let Some(line) = built.line else {
        return Err(HttpError::bad_request("missing request line"));
    };
    let framing = Framing::from_headers(&built.headers, line.version)?;
    let head = RequestHead {
        method: method_string(line.method, opts)?,
        target: line.target.to_vec(),
        path: line.path.to_vec(),
        query: line.query.to_vec(),
        version: line.version,
        headers: built.headers,
        body: framing.body,
        keep_alive: framing.keep_alive,
        expect_continue: framing.expect_continue,
    };
    Ok(Parsed::Complete {
        head,
        consumed: scan.pos,
    })
}

/// Progress through a head: everything before `pos` has been validated.
#[derive(Clone, Debug, Default)]
struct Scan {
    /// Start of the first line not yet processed.
    pos: usize,
    /// Where to resume looking for the LF ending the line at `pos`.
    lf_from: usize,
    empty_lines: usize,
    /// Whether the request line has been processed.
    in_headers: bool,
    /// Header lines seen (folded continuations excluded).
    fields: usize,
    /// Size so far of the last header, while continuation lines may follow.
    pending_size: Option<usize>,
}

/// What a building scan collects.
#[derive(Default)]
struct Built<'b> {
    line: Option<ParsedLine<'b>>,
    headers: Vec<Header>,
    /// Index in `headers` of the last header, for unfolding; None if dropped.
    last_kept: Option<usize>,
}

impl Scan {
    /// Validate complete lines from `self.pos` on, building into `built` if
    /// given. Returns true once the empty line ending the head is processed.
    fn run<'b>(
        &mut self,
        buf: &'b [u8],
        opts: &ParserOptions,
        mut built: Option<&mut Built<'b>>,
    ) -> Result<bool, HttpError> {
        loop {
            let (content, next, bare_lf) = match next_line(buf, self.pos, self.lf_from) {
                Line::Partial(so_far) => {
                    self.check_partial(so_far, opts)?;
                    self.lf_from = buf.len();
                    return Ok(false);
                }
                Line::Complete {
                    content,
                    next,
                    bare_lf,
                } => (content, next, bare_lf),
            };
            // Bare LF is only reported after the checks a partial line gets,
            // so the verdict does not depend on how the bytes arrived.
            let reject_bare_lf = || {
                if bare_lf {
                    Err(HttpError::bad_request("bare LF in request head"))
                } else {
                    Ok(())
                }
            };
            if !self.in_headers {
                if content.is_empty() && !bare_lf {
                    self.empty_lines += 1;
                    if self.empty_lines > MAX_LEADING_EMPTY_LINES {
                        return Err(HttpError::bad_request(
                            "too many empty lines before request line",
                        ));
                    }
                } else {
                    if opts.limit_request_line > 0 && content.len() > opts.limit_request_line {
                        return Err(request_line_too_long(opts));
                    }
                    reject_bare_lf()?;
                    let line = parse_request_line(content, opts)?;
                    if let Some(b) = built.as_deref_mut() {
                        b.line = Some(line);
                        b.headers.reserve(16);
                    }
                    self.in_headers = true;
                }
            } else {
                let Some(&first) = content.first() else {
                    reject_bare_lf()?;
                    self.pos = next;
                    self.lf_from = next;
                    return Ok(true);
                };
                self.check_line_start(first, content.len(), opts)?;
                reject_bare_lf()?;
                if is_ows(first) {
                    let cont = trim_ows(content);
                    check_value(cont)?;
                    self.pending_size = self.pending_size.map(|s| s + content.len() + 2);
                    if let Some(b) = built.as_deref_mut() {
                        unfold(b, cont);
                    }
                } else {
                    self.fields += 1;
                    let (name, value, keep) = parse_header_line(content, opts)?;
                    self.pending_size = Some(content.len() + 2);
                    if let Some(b) = built.as_deref_mut() {
                        b.last_kept = None;
                        if keep {
                            b.last_kept = Some(b.headers.len());
                            b.headers.push(Header {
                                name: ascii_string(name)?,
                                value: value.to_vec(),
                            });
                        }
                    }
                }
            }
            self.pos = next;
            self.lf_from = next;
        }
    }

    /// Limit checks on a line whose end has not arrived yet, so an over-long
    /// line is refused before the caller buffers all of it.
    fn check_partial(&self, so_far: &[u8], opts: &ParserOptions) -> Result<(), HttpError> {
        // A trailing CR may be the first half of the CRLF.
        let len = match so_far.last() {
            Some(b'\r') => so_far.len() - 1,
            _ => so_far.len(),
        };
        if !self.in_headers {
            if opts.limit_request_line > 0 && len > opts.limit_request_line {
                return Err(request_line_too_long(opts));
            }
        } else if let Some(&first) = so_far.first() {
            // A lone CR may be the start of the terminating empty line.
            if so_far != b"\r" {
                self.check_line_start(first, len, opts)?;
            }
        }
        Ok(())
    }

    /// Checks that only need a header line's first byte and length, so they
    /// run on partial lines as well and give the same verdict either way.
    fn check_line_start(
        &self,
        first: u8,
        len: usize,
        opts: &ParserOptions,
    ) -> Result<(), HttpError> {
        // gunicorn counts the CRLF towards the field size.
        let line_size = len.saturating_add(2);
        if is_ows(first) {
            let Some(size) = self.pending_size else {
                return Err(HttpError::bad_request(
                    "whitespace between request line and first header",
                ));
            };
            if !opts.permit_obsolete_folding {
                return Err(HttpError::bad_request("obsolete line folding in header"));
            }
            if opts.limit_request_field_size > 0
                && size.saturating_add(line_size) > opts.limit_request_field_size
            {
                return Err(field_too_large(opts));
            }
        } else {
            let limit_fields = match opts.limit_request_fields {
                0 => MAX_HEADERS,
                n => n.min(MAX_HEADERS),
            };
            if self.fields >= limit_fields {
                return Err(HttpError::header_fields_too_large(format!(
                    "more than {limit_fields} header fields"
                )));
            }
            if opts.limit_request_field_size > 0 && line_size > opts.limit_request_field_size {
                return Err(field_too_large(opts));
            }
        }
        Ok(())
    }
}

fn request_line_too_long(opts: &ParserOptions) -> HttpError {
    HttpError::uri_too_long(format!(
        "request line longer than {} bytes",
        opts.limit_request_line
    ))
}

fn field_too_large(opts: &ParserOptions) -> HttpError {
    HttpError::header_fields_too_large(format!(
        "header field longer than {} bytes",
        opts.limit_request_field_size
    ))
}

/// One line of the head, found by scanning for LF.
enum Line<'a> {
    /// A full line; `content` excludes the line ending, `next` is where the
    /// following line starts. `bare_lf` marks a LF without CR before it:
    /// lenient LF handling differs between servers and is a smuggling vector.
    Complete {
        content: &'a [u8],
        next: usize,
        bare_lf: bool,
    },
    /// No LF yet; these are the bytes received so far.
    Partial(&'a [u8]),
}

/// Find the line starting at `start`, looking for its LF from `lf_from`
/// (bytes in between are known not to be LF).
fn next_line(buf: &[u8], start: usize, lf_from: usize) -> Line<'_> {
    let rest = buf.get(start..).unwrap_or_default();
    let skip = lf_from.saturating_sub(start).min(rest.len());
    let Some(i) = memchr::memchr(b'\n', rest.get(skip..).unwrap_or_default()) else {
        return Line::Partial(rest);
    };
    let lf = skip + i;
    let before_lf = rest.get(..lf).unwrap_or_default();
    let (content, bare_lf) = match before_lf.split_last() {
        Some((b'\r', content)) => (content, false),
        _ => (before_lf, true),
    };
    Line::Complete {
        content,
        next: start + lf + 1,
        bare_lf,
    }
}

/// Split and validate `name: value`. Returns the name, the trimmed value and
/// whether the header is kept (`false` when dropped for containing '_').
fn parse_header_line<'a>(
    line: &'a [u8],
    opts: &ParserOptions,
) -> Result<(&'a [u8], &'a [u8], bool), HttpError> {
    let Some(colon) = memchr::memchr(b':', line) else {
        return Err(HttpError::bad_request("header line without colon"));
    };
    let (mut name, rest) = line.split_at(colon);
    let raw_value = rest.get(1..).unwrap_or_default();
    if opts.strip_header_spaces {
        let end = name.iter().rposition(|&b| !is_ows(b)).map_or(0, |i| i + 1);
        name = name.get(..end).unwrap_or_default();
    }
    if name.is_empty() {
        return Err(HttpError::bad_request("empty header name"));
    }
    if !name.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::bad_request(
            if name.last().is_some_and(|&b| is_ows(b)) {
                "whitespace between header name and colon"
            } else {
                "invalid character in header name"
            },
        ));
    }
    let value = trim_ows(raw_value);
    check_value(value)?;
    // '_' and '-' both become '_' in WSGI's HTTP_* keys, so such a header
    // could impersonate one set by a trusted proxy.
    let keep = if name.contains(&b'_') {
        match opts.header_map {
            HeaderMapPolicy::Drop => false,
            HeaderMapPolicy::Refuse => {
                return Err(HttpError::bad_request("header name contains underscore"))
            }
            HeaderMapPolicy::Dangerous => true,
        }
    } else {
        true
    };
    Ok((name, value, keep))
}

/// Join an obs-fold continuation with a single space (RFC 9112 §5.2).
fn unfold(built: &mut Built<'_>, cont: &[u8]) {
    let Some(h) = built.last_kept.and_then(|i| built.headers.get_mut(i)) else {
        return;
    };
    if !cont.is_empty() {
        if !h.value.is_empty() {
            h.value.push(b' ');
        }
        h.value.extend_from_slice(cont);
    }
}

fn check_value(value: &[u8]) -> Result<(), HttpError> {
    if is_field_value(value) {
        Ok(())
    } else {
        Err(HttpError::bad_request("invalid character in header value"))
    }
}

/// Tokens are ASCII, so this cannot fail; mapping the error keeps it panic-free.
fn ascii_string(token: &[u8]) -> Result<String, HttpError> {
    String::from_utf8(token.to_vec()).map_err(|_| HttpError::bad_request("non-ASCII token"))
}

/// The validated parts of a request line, borrowed from the buffer.
struct ParsedLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    path: &'a [u8],
    query: &'a [u8],
    version: Version,
}

/// `method SP request-target SP HTTP-version`, with exactly one SP between
/// parts (RFC 9112 §3): gunicorn splits on single spaces, so extra or other
/// whitespace ends up inside a part and fails its validation.
fn parse_request_line<'a>(
    line: &'a [u8],
    opts: &ParserOptions,
) -> Result<ParsedLine<'a>, HttpError> {
    let malformed = || HttpError::bad_request("malformed request line");
    let sp1 = memchr::memchr(b' ', line).ok_or_else(malformed)?;
    let (method, rest) = line.split_at(sp1);
    let rest = rest.get(1..).unwrap_or_default();
    let sp2 = memchr::memchr(b' ', rest).ok_or_else(malformed)?;
    let (target, version) = rest.split_at(sp2);
    let version = version.get(1..).unwrap_or_default();

    check_method(method, opts)?;
    let (path, query) = parse_target(method, opts, target)?;
    let version = parse_version(version, opts)?;
    Ok(ParsedLine {
        method,
        target,
        path,
        query,
        version,
    })
}

/// The method as the application sees it, upper-cased if configured.
fn method_string(raw: &[u8], opts: &ParserOptions) -> Result<String, HttpError> {
    let mut method = ascii_string(raw)?;
    if opts.casefold_http_method {
        method.make_ascii_uppercase();
    }
    Ok(method)
}

/// Validate the method as it will be after optional case folding.
fn check_method(raw: &[u8], opts: &ParserOptions) -> Result<(), HttpError> {
    let invalid = || HttpError::bad_request("invalid request method");
    if !is_token(raw) {
        return Err(invalid());
    }
    if !opts.permit_unconventional_http_method {
        // Every registered method is upper-case; lower case and '#' only show
        // up in attacks, and the length bounds match gunicorn's.
        let folded = |b: u8| {
            if opts.casefold_http_method {
                b.to_ascii_uppercase()
            } else {
                b
            }
        };
        if raw
            .iter()
            .any(|&b| folded(b).is_ascii_lowercase() || b == b'#')
            || !(3..=20).contains(&raw.len())
        {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Whether the (possibly case-folded) method equals `name`.
fn method_is(raw: &[u8], opts: &ParserOptions, name: &[u8]) -> bool {
    if opts.casefold_http_method {
        raw.eq_ignore_ascii_case(name)
    } else {
        raw == name
    }
}

/// Validate the request-target's form against the method (RFC 9112 §3.2) and
/// split it into path and query, filling them the way gunicorn 27 does:
///
/// * origin-form `/p?q`: path `/p`, query `q` (fragment dropped);
/// * absolute-form `scheme://authority/p?q`, any RFC 3986 scheme, userinfo
///   allowed: path `/p` (empty when the URL has none), query `q`; the
///   authority is not used (the `Host` header names the host, as in
///   gunicorn);
/// * asterisk-form `*`, only for `OPTIONS`: path `*`;
/// * authority-form `host:port`, only (and always) for `CONNECT`: path is
///   the authority.
///
/// Stricter than gunicorn where its `urlsplit` produces nonsense or an RFC
/// says to reject: `CONNECT` needs `host:port` (gunicorn takes any target
/// and, for `example.com:443`, reports the path as `443`); an empty scheme
/// (`://x`) or one not starting with a letter is refused (gunicorn makes
/// the whole target a "path" that does not start with `/`); an `http(s)`
/// URL with an empty host is refused (RFC 9110 §4.2.1: "MUST reject"); an
/// IP literal must be `[IPv6]` or `[vX.future]`, followed by nothing or a
/// port.
fn parse_target<'a>(
    method: &[u8],
    opts: &ParserOptions,
    target: &'a [u8],
) -> Result<(&'a [u8], &'a [u8]), HttpError> {
    if target.is_empty() {
        return Err(HttpError::bad_request("empty request target"));
    }
    if !is_visible_ascii(target) {
        return Err(HttpError::bad_request(
            "invalid character in request target",
        ));
    }
    if target == b"*" {
        return if method_is(method, opts, b"OPTIONS") {
            Ok((b"*", b""))
        } else {
            Err(HttpError::bad_request(
                "asterisk-form target outside OPTIONS",
            ))
        };
    }
    if method_is(method, opts, b"CONNECT") {
        return if is_authority_form(target) {
            Ok((target, b""))
        } else {
            Err(HttpError::bad_request(
                "CONNECT requires an authority-form target (host:port)",
            ))
        };
    }
    if target.first() == Some(&b'/') {
        return Ok(split_path_query(target));
    }
    if let Some((scheme, after_scheme)) = split_scheme(target) {
        let end = after_scheme
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(end);
        let (userinfo, host) = match authority.iter().rposition(|&b| b == b'@') {
            Some(at) => (&authority[..at], &authority[at + 1..]),
            None => (&b""[..], authority),
        };
        let web = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
        if (web && host.is_empty())
            || userinfo.iter().any(|&b| matches!(b, b'[' | b']'))
            || !is_valid_host_port(host)
        {
            return Err(HttpError::bad_request(
                "invalid authority in absolute-form target",
            ));
        }
        return Ok(split_path_query(rest));
    }
    if is_authority_form(target) {
        return Err(HttpError::bad_request(
            "authority-form target outside CONNECT",
        ));
    }
    Err(HttpError::bad_request("invalid request target"))
}

/// `(scheme, rest)` for `scheme://rest`, with an RFC 3986 scheme
/// (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), as `urlsplit` reads it.
fn split_scheme(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let sep = memchr::memmem::find(target, b"://")?;
    let scheme = target.get(..sep)?;
    let first_is_alpha = scheme.first().is_some_and(u8::is_ascii_alphabetic);
    let chars_ok = scheme
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (first_is_alpha && chars_ok).then(|| (scheme, target.get(sep + 3..).unwrap_or_default()))
}

/// `host[:port]` as `urlsplit` accepts it: brackets only around a whole IP
/// literal (`[IPv6]`, `[IPv6%zone]` or `[vHEX.anything]`), which may be
/// followed by `:port` only. The port itself is not checked, as gunicorn.
fn is_valid_host_port(host: &[u8]) -> bool {
    let Some(inner) = host.strip_prefix(b"[") else {
        return !host.iter().any(|&b| matches!(b, b'[' | b']'));
    };
    let Some(close) = memchr::memchr(b']', inner) else {
        return false;
    };
    let (literal, after) = (&inner[..close], &inner[close + 1..]);
    let after_ok = after.is_empty()
        || (after.first() == Some(&b':') && !after.iter().any(|&b| matches!(b, b'[' | b']')));
    after_ok && is_ip_literal(literal)
}

/// The inside of `[...]`: an IPv6 address (an optional `%zone` is not
/// part of the address) or an IPvFuture `v1*HEXDIG "." 1*char`.
fn is_ip_literal(literal: &[u8]) -> bool {
    if let Some(future) = literal.strip_prefix(b"v").or(literal.strip_prefix(b"V")) {
        return match memchr::memchr(b'.', future) {
            Some(dot) => {
                dot > 0 && future[..dot].iter().all(u8::is_ascii_hexdigit) && dot + 1 < future.len()
            }
            None => false,
        };
    }
    let address = match memchr::memchr(b'%', literal) {
        Some(percent) => &literal[..percent],
        None => literal,
    };
    std::str::from_utf8(address)
        .ok()
        .and_then(|text| text.parse::<std::net::Ipv6Addr>().ok())
        .is_some()
}

/// `host:port` (RFC 9112 §3.2.3): a non-empty reg-name or IP literal, and a
/// decimal port of 1 to 5 digits. No userinfo, path, query or fragment.
fn is_authority_form(target: &[u8]) -> bool {
    if target
        .iter()
        .any(|&b| matches!(b, b'/' | b'?' | b'#' | b'@'))
    {
        return false;
    }
    let Some(colon) = target.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (host, port) = target.split_at(colon);
    let port = port.get(1..).unwrap_or_default();
    !host.is_empty()
        && (host.first() == Some(&b'[') || !host.contains(&b':'))
        && is_valid_host_port(host)
        && (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
}

/// Split `path?query#fragment`; the fragment is dropped (clients should not
/// send one, gunicorn discards it). An absolute-form URL without a path
/// keeps an empty path, as `PATH_INFO` is in gunicorn.
fn split_path_query(s: &[u8]) -> (&[u8], &[u8]) {
    let s = match memchr::memchr(b'#', s) {
        Some(hash) => s.get(..hash).unwrap_or_default(),
        None => s,
    };
    match memchr::memchr(b'?', s) {
        Some(q) => (
            s.get(..q).unwrap_or_default(),
            s.get(q + 1..).unwrap_or_default(),
        ),
        None => (s, &b""[..]),
    }
}

/// `HTTP/d.d` exactly (RFC 9112 §2.3 allows restricting to single digits).
fn parse_version(raw: &[u8], opts: &ParserOptions) -> Result<Version, HttpError> {
    let [b'H', b'T', b'T', b'P', b'/', major @ b'0'..=b'9', b'.', minor @ b'0'..=b'9'] = *raw
    else {
        return Err(HttpError::bad_request("invalid HTTP version"));
    };
    let version = Version {
        major: major - b'0',
        minor: minor - b'0',
    };
    let supported = version == Version::HTTP_10
        || version == Version::HTTP_11
        || (opts.permit_unconventional_http_version && version.major == 1);
    if supported {
        Ok(version)
    } else {
        Err(HttpError::version_not_supported(format!(
            "{} is not supported",
            version.as_str()
        )))
    }
}

/// Body framing and connection semantics derived from the headers.
struct Framing {
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
}

impl Framing {
    /// RFC 9112 §6: refuse every ambiguous framing, since a proxy in front
    /// of us might resolve the ambiguity differently (request smuggling).
    fn from_headers(headers: &[Header], version: Version) -> Result<Self, HttpError> {
        let mut content_length: Option<u64> = None;
        let mut te_seen = false;
        let mut chunked = false;
        let mut must_close = false;
        let mut hosts = 0;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        let mut expect_continue = false;
        let at_least_11 = version.major > 1 || (version.major == 1 && version.minor >= 1);

        for h in headers {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                if content_length.is_some() {
                    return Err(HttpError::bad_request("duplicate Content-Length"));
                }
                content_length = Some(parse_content_length(&h.value)?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                if !at_least_11 {
                    return Err(HttpError::bad_request("Transfer-Encoding on HTTP/1.0"));
                }
                te_seen = true;
                for coding in h.value.split(|&b| b == b',') {
                    let coding = trim_ows(coding);
                    if chunked {
                        return Err(HttpError::bad_request(
                            "chunked must be the last transfer coding, once",
                        ));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked = true;
                    } else if coding.is_empty() {
                        return Err(HttpError::bad_request("empty transfer coding"));
                    } else if coding.eq_ignore_ascii_case(b"identity") {
                        // gunicorn tolerates identity before chunked; it is a no-op.
                    } else if [
                        &b"gzip"[..],
                        b"x-gzip",
                        b"deflate",
                        b"compress",
                        b"x-compress",
                    ]
                    .iter()
                    .any(|c| coding.eq_ignore_ascii_case(c))
                    {
                        // The app receives the still-encoded body; like gunicorn,
                        // don't trust anything after it on this connection.
                        must_close = true;
                    } else {
                        return Err(HttpError::not_implemented("unsupported transfer coding"));
                    }
                }
            } else if name.eq_ignore_ascii_case(b"host") {
                hosts += 1;
                if hosts > 1 {
                    return Err(HttpError::bad_request("duplicate Host header"));
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for opt in h.value.split(|&b| b == b',') {
                    let opt = trim_ows(opt);
                    if opt.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"expect") {
                if h.value.eq_ignore_ascii_case(b"100-continue") {
                    // RFC 9110 §10.1.1: ignore the expectation from HTTP/1.0 clients.
                    expect_continue |= at_least_11;
                } else {
                    return Err(HttpError::new(417, "unsupported expectation"));
                }
            }
        }

        let body = if te_seen {
            if !chunked {
                return Err(HttpError::bad_request(
                    "final transfer coding is not chunked",
                ));
            }
            if content_length.is_some() {
                return Err(HttpError::bad_request(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
            BodyKind::Chunked
        } else {
            content_length.map_or(BodyKind::Empty, BodyKind::Length)
        };
        let keep_alive = !must_close && !conn_close && (at_least_11 || conn_keep_alive);
        Ok(Framing {
            body,
            keep_alive,
            expect_continue,
        })
    }
}

/// `1*DIGIT` only: no sign, no list form, no whitespace inside, must fit u64.
fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    let invalid = || HttpError::bad_request("invalid Content-Length");
    if value.is_empty() {
        return Err(invalid());
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(invalid());
        }
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(invalid)
    })
}
