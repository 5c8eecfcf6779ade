//! Names from outside, made safe to print.
//!
//! File names in a source tree and names read from the bucket are untrusted:
//! a name may hold a newline (which forges a second log line), an ESC
//! (`\x1b[2J` clears the operator's terminal, `\x1b[31m` recolours it) or a
//! bidirectional override that makes the name read backwards. Every message
//! that carries such a name formats it through [`Escaped`], which writes
//! control characters as Rust-style escapes: `\n`, `\r`, `\t`, `\x1b`, and
//! `\u{85}` / `\u{202e}` for C1 controls, bidi controls and the Unicode line
//! and paragraph separators. Everything else, including non-ASCII letters
//! and backslashes, is written unchanged so ordinary names read as they are.
//! Pure: no I/O.

use std::fmt::{self, Display, Write};

/// `value`'s text with control characters escaped (see the module docs).
///
/// ```
/// use offsite::escape::Escaped;
/// assert_eq!(Escaped("evil\x1b[31m\nname").to_string(), "evil\\x1b[31m\\nname");
/// assert_eq!(Escaped("año/ok.wav").to_string(), "año/ok.wav");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// `s` escaped, as a new string.
pub fn escaped(s: &str) -> String {
    Escaped(s).to_string()
}

/// Whether `c` is written as an escape.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Forwards text to the inner writer with control characters escaped.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if u32::from(c) < 0x80 => write!(self.0, "\\x{:02x}", u32::from(c))?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_escapes_and_nothing_else_changes() {
        let cases = [
            ("plain name.wav", "plain name.wav"),
            ("evil\x1b[31m\nname", "evil\\x1b[31m\\nname"),
            ("tab\there\r", "tab\\there\\r"),
            ("nul\0del\x7f", "nul\\x00del\\x7f"),
            ("c1\u{85}next", "c1\\u{85}next"),
            ("bidi\u{202e}vaw.exe", "bidi\\u{202e}vaw.exe"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("back\\slash ñ 日本", "back\\slash ñ 日本"),
            ("", ""),
        ];
        for (raw, shown) in cases {
            assert_eq!(escaped(raw), shown, "{raw:?}");
            assert!(!escaped(raw).chars().any(needs_escape), "{raw:?}");
        }
    }

    #[test]
    fn any_display_value_is_escaped_not_only_strings() {
        let path = std::path::Path::new("dir/a\nb");
        assert_eq!(Escaped(path.display()).to_string(), "dir/a\\nb");
        assert_eq!(format!("[{}]", Escaped(&"x\x1by")), "[x\\x1by]");
    }
}
