//! The GSM 03.38 alphabet text messages are cheapest in: 160 characters fit one segment,
//! where a single character outside it (an `á`, a curly quote) switches the whole message
//! to UCS-2 and 70 per segment. Pure.

/// The basic GSM 7-bit alphabet (one septet each), without the escape code.
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                     ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: two septets each (escape + code).
const EXTENDED: &str = "^{}\\[~]|€\u{c}";

fn septets(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Whether every character of `text` is in the GSM alphabet.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| septets(c).is_some())
}

/// `text` with the characters GSM lacks replaced by their nearest GSM spelling (the
/// Spanish `á í ó ú` lose their accent; `é ñ ü ¿ ¡` are GSM already); anything without
/// one becomes `?`.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if septets(c).is_some() {
            out.push(c);
            continue;
        }
        let folded = match c {
            'á' | 'â' | 'ã' | 'ā' => "a",
            'Á' | 'À' | 'Â' | 'Ã' => "A",
            'ê' | 'ë' | 'ē' => "e",
            'È' | 'Ê' | 'Ë' => "E",
            'í' | 'î' | 'ï' => "i",
            'Í' | 'Ì' | 'Î' | 'Ï' => "I",
            'ó' | 'ô' | 'õ' => "o",
            'Ó' | 'Ò' | 'Ô' | 'Õ' => "O",
            'ú' | 'û' => "u",
            'Ú' | 'Ù' | 'Û' => "U",
            'ç' => "c",
            'ý' | 'ÿ' => "y",
            'Ý' => "Y",
            '‘' | '’' | '´' | '`' => "'",
            '“' | '”' | '«' | '»' => "\"",
            '–' | '—' | '‐' => "-",
            '…' => "...",
            '\t' | '\u{a0}' | '\u{2009}' | '\u{202f}' => " ",
            _ => "?",
        };
        out.push_str(folded);
    }
    out
}

/// How many segments a provider bills `text` as: GSM-7 160 septets in one, 153 per part
/// when split; otherwise UCS-2, 70 UTF-16 units in one, 67 per part.
pub fn segments(text: &str) -> usize {
    let (units, single, part) = match text.chars().map(septets).sum::<Option<usize>>() {
        Some(septets) => (septets, 160, 153),
        None => (text.encode_utf16().count(), 70, 67),
    };
    if units <= single {
        1
    } else {
        units.div_ceil(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanish_keeps_what_gsm_has_and_folds_the_rest() {
        assert_eq!(
            fold("¿Código? Señora Müller, ¡vídeo mañana!"),
            "¿Codigo? Señora Müller, ¡video mañana!"
        );
        assert!(is_gsm7(&fold("“árbol” — 10 €, ok… 日本")));
        assert_eq!(fold("日本"), "??");
    }

    #[test]
    fn segments_follow_the_alphabet_in_use() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        // Extension characters count twice.
        assert_eq!(segments(&"{".repeat(80)), 1);
        assert_eq!(segments(&"{".repeat(81)), 2);
        // One character outside GSM: the whole message is UCS-2.
        assert_eq!(segments(&format!("á{}", "a".repeat(69))), 1);
        assert_eq!(segments(&format!("á{}", "a".repeat(70))), 2);
    }
}
