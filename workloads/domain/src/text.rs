//! Checks shared by every free-text field a client sends (product names, address lines).

use crate::FieldError;

/// Whitespace as the event schema's regular expressions (ECMA-262 `\s`) see it: Unicode
/// whitespace plus U+FEFF (the byte order mark), which a pasted text may start with.
fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// `value` without leading and trailing whitespace (see [`is_blank_char`]).
pub(crate) fn trimmed(value: &str) -> &str {
    value.trim_matches(is_blank_char)
}

/// Pushes at most one error for `value` at `field`: blank, longer than `max_chars` characters,
/// or containing a control character (a NUL would also be refused by PostgreSQL's `text`).
pub(crate) fn check_text(errors: &mut Vec<FieldError>, field: String, value: &str, max_chars: usize) {
    let message = if trimmed(value).is_empty() {
        "must not be blank".to_owned()
    } else if value.chars().count() > max_chars {
        format!("must be at most {max_chars} characters")
    } else if value.chars().any(char::is_control) {
        "must not contain control characters".to_owned()
    } else {
        return;
    };
    errors.push(FieldError::new(field, message));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, max_chars: usize) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_text(&mut errors, "/f".to_owned(), value, max_chars);
        errors
    }

    #[test]
    fn text_within_limits_passes() {
        assert_eq!(check("Zoë's ☕ mug", 11), vec![]);
    }

    #[test]
    fn limit_counts_characters_not_bytes() {
        assert_eq!(check("ääää", 4), vec![]);
        assert_eq!(check("äääää", 4), vec![FieldError::new("/f", "must be at most 4 characters")]);
    }

    #[test]
    fn blank_text_is_refused() {
        for value in ["", "   ", "\t\n", "\u{feff}", "\u{a0}\u{3000}"] {
            assert_eq!(check(value, 10), vec![FieldError::new("/f", "must not be blank")], "{value:?}");
        }
    }

    #[test]
    fn trimmed_also_strips_a_byte_order_mark() {
        assert_eq!(trimmed("\u{feff} Mug\u{2003}"), "Mug");
    }

    #[test]
    fn control_characters_are_refused() {
        for value in ["a\0b", "a\nb", "a\u{7f}", "a\u{85}b"] {
            assert_eq!(
                check(value, 10),
                vec![FieldError::new("/f", "must not contain control characters")],
                "{value:?}"
            );
        }
    }
}
