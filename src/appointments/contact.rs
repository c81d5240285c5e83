//! What a patient types when booking, checked before anything is written: name, e-mail,
//! mobile number (E.164), date of birth, reason, language. Pure.

use chrono::NaiveDate;

/// Longest name, characters.
pub const MAX_NAME: usize = 200;
/// Longest reason, characters.
pub const MAX_REASON: usize = 500;

/// A field the patient must correct, and why (the sentence they are shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Free text on one line: trimmed, not empty, at most `max` characters, no control
/// characters.
pub fn text(field: &'static str, v: &str, max: usize) -> Result<String, FieldError> {
    let t = v.trim();
    if t.is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(bad(field, format!("at most {max} characters")));
    }
    if t.chars().any(char::is_control) {
        return Err(bad(field, "must be one line of text"));
    }
    Ok(t.to_owned())
}

/// A sane e-mail address: one `@`, a local part of 1–64 characters, a domain of labels
/// (letters, digits, hyphens) with at least one dot; at most 254 characters. The domain
/// is lower-cased. Proof that it is real comes from the code sent to it, not from here.
pub fn email(v: &str) -> Result<String, FieldError> {
    let e = v.trim();
    let err = || bad("email", "not an e-mail address such as name@example.org");
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err());
    }
    let (local, domain) = e.split_once('@').ok_or_else(err)?;
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.contains('@')
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !(local_ok && domain_ok) {
        return Err(err());
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

/// A mobile number in E.164: `+`, a country code not starting with 0, 8–15 digits in all.
/// Spaces, dots, hyphens and parentheses people type between digits are dropped.
pub fn phone(v: &str) -> Result<String, FieldError> {
    let compact: String = v
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or_default();
    let ok = compact.starts_with('+')
        && (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(compact)
    } else {
        Err(bad(
            "phone",
            "not a mobile number in international form such as +34600111222",
        ))
    }
}

/// `YYYY-MM-DD`, not in the future and not before 1900.
pub fn birth_date(v: &str, today: NaiveDate) -> Result<String, FieldError> {
    let d = NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
        .map_err(|_| bad("birth_date", "a date such as 1980-04-23"))?;
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a valid date");
    if d > today || d < earliest {
        return Err(bad("birth_date", "must be a past date after 1900"));
    }
    Ok(d.format("%Y-%m-%d").to_string())
}

/// A language tag as pages name their language (`en`, `es`, `pt-br`), lower-cased.
pub fn lang(v: &str) -> Result<String, FieldError> {
    let t = v.trim().to_lowercase();
    let mut parts = t.split('-');
    let primary = parts.next().unwrap_or_default();
    let ok = (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && t.len() <= 35;
    if ok {
        Ok(t)
    } else {
        Err(bad("lang", "a language tag such as `en` or `es`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_people_have_pass_and_junk_does_not() {
        assert_eq!(
            email(" Ana.Ruiz+citas@Example.ORG ").unwrap(),
            "Ana.Ruiz+citas@example.org"
        );
        assert_eq!(email("ñu@correo.es").unwrap(), "ñu@correo.es");
        for junk in [
            "",
            "ana",
            "ana@",
            "@example.org",
            "ana@example",
            "ana@@example.org",
            "ana @example.org",
            "ana@exa mple.org",
            "ana@-example.org",
            "ana..r@example.org",
            ".ana@example.org",
            "ana@example..org",
            "ana\n@example.org",
        ] {
            assert_eq!(email(junk).unwrap_err().field, "email", "{junk:?}");
        }
        assert!(email(&format!("{}@example.org", "a".repeat(65))).is_err());
    }

    #[test]
    fn phones_are_e164_after_dropping_separators() {
        assert_eq!(phone("+34 600 11 12 22").unwrap(), "+34600111222");
        assert_eq!(phone("+1 (555) 010-0100").unwrap(), "+15550100100");
        for junk in [
            "600111222",
            "+0600111222",
            "+34",
            "+34abc111222",
            "+1234567890123456",
            "34600111222",
            "",
        ] {
            assert_eq!(phone(junk).unwrap_err().field, "phone", "{junk:?}");
        }
    }

    #[test]
    fn birth_dates_are_past_dates() {
        let today = NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
        assert_eq!(birth_date("1980-04-23", today).unwrap(), "1980-04-23");
        assert!(birth_date("2027-03-02", today).is_err());
        assert!(birth_date("1899-12-31", today).is_err());
        assert!(birth_date("23/04/1980", today).is_err());
        assert!(birth_date("1980-02-30", today).is_err());
    }

    #[test]
    fn text_is_one_bounded_line() {
        assert_eq!(text("name", "  Ana Ruiz ", MAX_NAME).unwrap(), "Ana Ruiz");
        assert!(text("name", "   ", MAX_NAME).is_err());
        assert!(text("reason", &"x".repeat(MAX_REASON + 1), MAX_REASON).is_err());
        assert!(text("name", "Ana\u{7}", MAX_NAME).is_err());
        assert_eq!(lang("ES").unwrap(), "es");
        assert!(lang("español").is_err());
    }
}
