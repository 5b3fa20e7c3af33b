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
