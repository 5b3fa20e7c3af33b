//! Hex arguments as people type them: `00A40400`, `00 A4 04 00`, `00:a4:04:00`.

/// Why an argument is not hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// A character that is not a hex digit or a separator.
    #[error("{argument} {input:?}: {found:?} at character {position} is not a hex digit")]
    BadDigit {
        /// What the argument is (e.g. `APDU`).
        argument: &'static str,
        /// The argument as given.
        input: String,
        /// The offending character.
        found: char,
        /// Its position (0-based, in characters).
        position: usize,
    },
    /// An odd number of hex digits.
    #[error("{argument} {input:?}: odd number of hex digits ({digits}); each byte takes two")]
    OddDigits {
        /// What the argument is.
        argument: &'static str,
        /// The argument as given.
        input: String,
        /// How many digits were found.
        digits: usize,
    },
    /// Nothing at all.
    #[error("{argument}: empty; expected hex digits")]
    Empty {
        /// What the argument is.
        argument: &'static str,
    },
}

/// Parses hex, ignoring spaces, tabs, `:` and `-` between digits.
pub fn parse_hex(argument: &'static str, input: &str) -> Result<Vec<u8>, HexError> {
    let mut nibbles = Vec::with_capacity(input.len());
    for (position, character) in input.chars().enumerate() {
        if matches!(character, ' ' | '\t' | ':' | '-') {
            continue;
        }
        let Some(value) = character.to_digit(16) else {
            return Err(HexError::BadDigit {
                argument,
                input: input.to_owned(),
                found: character,
                position,
            });
        };
        // to_digit(16) is below 16, so it fits a byte.
        nibbles.push(value as u8);
    }
    if nibbles.is_empty() {
        return Err(HexError::Empty { argument });
    }
    if nibbles.len() % 2 != 0 {
        return Err(HexError::OddDigits {
            argument,
            input: input.to_owned(),
            digits: nibbles.len(),
        });
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|pair| (pair[0] << 4) | pair[1])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_case() {
        assert_eq!(
            parse_hex("x", "00 a4:04-00").unwrap(),
            vec![0x00, 0xA4, 0x04, 0x00]
        );
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(
            parse_hex("APDU", "00A4G0"),
            Err(HexError::BadDigit {
                argument: "APDU",
                input: "00A4G0".into(),
                found: 'G',
                position: 4
            })
        );
        assert_eq!(
            parse_hex("APDU", "00A"),
            Err(HexError::OddDigits {
                argument: "APDU",
                input: "00A".into(),
                digits: 3
            })
        );
        assert_eq!(
            parse_hex("TLV", " "),
            Err(HexError::Empty { argument: "TLV" })
        );
    }
}
