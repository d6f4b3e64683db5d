//! Text fields that come from outside, checked once before anything is stored.

/// Checks a text field: at most `max_chars` characters, not blank when `required`, and no
/// NUL character (PostgreSQL's text type cannot hold one, and no person types it).
///
/// Errors: a message naming the field, for a 400 answer.
pub fn check_field(
    name: &str,
    value: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("{name} must not contain a NUL character"));
    }
    if required && value.trim().is_empty() {
        return Err(format!("{name} must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(format!("{name} must be at most {max_chars} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_nul_blank_and_long() {
        assert!(check_field("text", "a\0b", 10, true)
            .unwrap_err()
            .contains("text"));
        assert!(check_field("text", "  ", 10, true).is_err());
        assert!(check_field("text", "", 10, false).is_ok());
        assert!(check_field("text", "ééé", 3, true).is_ok());
        assert!(check_field("text", "éééé", 3, true).is_err());
    }

    proptest! {
        #[test]
        fn what_passes_has_no_nul(s in "\\PC{0,20}") {
            if check_field("f", &s, 20, false).is_ok() {
                prop_assert!(!s.contains('\0'));
            }
        }
    }
}
