//! A small POSIX-shell-style word splitter for `FERRICORN_CMD_ARGS`, matching
//! what gunicorn gets from Python's `shlex.split` for `GUNICORN_CMD_ARGS`.

/// Splits `text` into words: whitespace separates words, single quotes keep
/// everything literally, double quotes allow `\"`, `\\`, `\$`, `` \` `` and
/// escaped newlines, and a backslash outside quotes escapes the next character.
/// Quoted pieces glue onto adjacent text (`--name="my app"` is one word).
pub(crate) fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Distinguishes "no word yet" from an explicitly empty word like `''`.
    let mut in_word = false;
    let mut chars = text.chars();

    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    fn ok(text: &str) -> Vec<String> {
        match split(text) {
            Ok(words) => words,
            Err(e) => panic!("split({text:?}) failed: {e}"),
        }
    }

    #[test]
    fn plain_words_and_whitespace() {
        assert_eq!(
            ok("  -w 3\t--bind=0.0.0.0:80\n"),
            ["-w", "3", "--bind=0.0.0.0:80"]
        );
        assert!(ok("").is_empty());
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn quotes() {
        assert_eq!(ok(r#"--name "my app""#), ["--name", "my app"]);
        assert_eq!(ok(r#"--name="my app" x"#), ["--name=my app", "x"]);
        assert_eq!(ok("'a \"b\" c' d"), ["a \"b\" c", "d"]);
        assert_eq!(ok(r#""it's""#), ["it's"]);
        assert_eq!(ok(r#""a\"b\\c\$d\e""#), [r#"a"b\c$d\e"#]);
        assert_eq!(ok("'' x"), ["", "x"]);
        assert_eq!(ok(r#"a'b'"c"d"#), ["abcd"]);
    }

    #[test]
    fn backslashes() {
        assert_eq!(ok(r"a\ b c"), ["a b", "c"]);
        assert_eq!(ok(r"\'x"), ["'x"]);
        assert_eq!(ok("a\\\nb"), ["ab"]);
    }

    #[test]
    fn errors() {
        assert_eq!(split("'abc"), Err("unterminated single quote".into()));
        assert_eq!(split("\"abc"), Err("unterminated double quote".into()));
        assert_eq!(split("abc\\"), Err("trailing backslash".into()));
    }
}
