//! Response APDUs: the response data field followed by SW1 SW2 (ISO 7816-4 §5.1).

use super::{ApduError, StatusWord};

/// A response APDU: the data field (possibly empty) and the trailing status word.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Response {
    /// The response data field, Nr bytes.
    #[serde(serialize_with = "super::serialize_hex")]
    pub data: Vec<u8>,
    /// The status word SW1 SW2.
    pub sw: StatusWord,
}

impl Response {
    /// A response with the given data and status word.
    pub fn new(data: impl Into<Vec<u8>>, sw: StatusWord) -> Response {
        Response {
            data: data.into(),
            sw,
        }
    }

    /// A response without data.
    pub fn status(sw: StatusWord) -> Response {
        Response::new(Vec::new(), sw)
    }

    /// Splits received bytes into data and the last two bytes, SW1 SW2.
    ///
    /// # Errors
    /// [`ApduError::ResponseTooShort`] when fewer than two bytes are given.
    pub fn parse(bytes: &[u8]) -> Result<Response, ApduError> {
        match bytes {
            [data @ .., sw1, sw2] => Ok(Response::new(data, StatusWord::from_bytes(*sw1, *sw2))),
            _ => Err(ApduError::ResponseTooShort { len: bytes.len() }),
        }
    }

    /// [`Response::parse`] of bytes the caller owns and no longer needs: the data field
    /// keeps their buffer instead of a copy (a reader's answer is parsed once per
    /// command). The bytes come back unchanged when there are fewer than two.
    pub fn from_owned(mut bytes: Vec<u8>) -> Result<Response, Vec<u8>> {
        let Some(data_len) = bytes.len().checked_sub(2) else {
            return Err(bytes);
        };
        let Some(&[sw1, sw2]) = bytes.get(data_len..) else {
            return Err(bytes);
        };
        bytes.truncate(data_len);
        Ok(Response {
            data: bytes,
            sw: StatusWord::from_bytes(sw1, sw2),
        })
    }

    /// The encoding: data then SW1 SW2.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len().saturating_add(2));
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }

    /// Whether the status word is `9000`.
    pub fn is_success(&self) -> bool {
        self.sw.is_success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_owned_splits_like_parse_and_gives_short_input_back() {
        // (received, data, SW), or None: fewer than two bytes.
        let table: [(&str, Option<(&str, u16)>); 5] = [
            ("9000", Some(("", 0x9000))),
            ("6A82", Some(("", 0x6A82))),
            ("0102036110", Some(("010203", 0x6110))),
            ("90", None),
            ("", None),
        ];
        for (received, expected) in table {
            let bytes = hex::decode(received).unwrap();
            match expected {
                Some((data, sw)) => {
                    let [sw1, sw2] = sw.to_be_bytes();
                    let response =
                        Response::new(hex::decode(data).unwrap(), StatusWord::from_bytes(sw1, sw2));
                    assert_eq!(
                        Response::from_owned(bytes.clone()),
                        Ok(response),
                        "{received}"
                    );
                }
                None => assert_eq!(
                    Response::from_owned(bytes.clone()),
                    Err(bytes),
                    "{received}"
                ),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn from_owned_is_parse(bytes: Vec<u8>) {
            proptest::prop_assert_eq!(
                Response::from_owned(bytes.clone()).ok(),
                Response::parse(&bytes).ok()
            );
        }
    }
}
