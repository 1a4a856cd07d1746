//! Byte-class tables shared by the parsers (RFC 9110 token characters,
//! field-value characters, whitespace).

/// RFC 9110 §5.6.2 `tchar`, as a lookup table so the hot loops stay branch-light.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// Whether `b` may appear in an RFC 9110 token.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Whether `s` is a non-empty RFC 9110 token.
#[inline]
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `b` may appear in a field value: anything but controls, except HTAB.
/// Bytes >= 0x80 are obs-text, which RFC 9110 still requires recipients to accept.
#[inline]
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Whether every byte of `s` passes [`is_field_value_byte`].
///
/// Written without early exit so LLVM vectorizes it: header values are the
/// bulk of a request head and this runs over every byte of them.
#[inline]
pub(crate) fn is_field_value(s: &[u8]) -> bool {
    !s.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    })
}

/// Whether every byte of `s` is visible ASCII (0x21..=0x7e), as required of
/// a request-target; vectorizable like [`is_field_value`].
#[inline]
pub(crate) fn is_visible_ascii(s: &[u8]) -> bool {
    !s.iter()
        .fold(false, |bad, &b| bad | (b <= b' ') | (b >= 0x7f))
}

/// Optional whitespace (SP / HTAB).
#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` with leading and trailing SP / HTAB removed.
#[inline]
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or(&[])
}
