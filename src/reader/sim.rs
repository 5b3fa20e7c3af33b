//! The `sim:` backend: the software card of `card-applet-sim`, driven in-process.
//!
//! The reader hands bytes to the card exactly as a contact interface would; the card
//! answers like silicon, so the same [`Transport`](super::Transport) rules apply as for a
//! real reader (a `t0-slow` card answers `61xx` and `6Cxx` here too).

use std::path::Path;

use card_applet_sim::card::{SimCard, SimOptions};
use card_applet_sim::profile::{LineBehaviour, Profile};
use card_applet_sim::rng::SeededRandom;
use card_applet_sim::{ResetKind, SmartCard};

use super::uri::{ReaderUri, SimUri};
use super::{Reader, ReaderError, ReaderListing};

/// A reader whose card is any in-process [`SmartCard`].
pub struct SimReader {
    name: String,
    card: Box<dyn SmartCard + Send>,
    powered: bool,
    line_behaviour: LineBehaviour,
}

impl std::fmt::Debug for SimReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimReader")
            .field("name", &self.name)
            .field("powered", &self.powered)
            .finish_non_exhaustive()
    }
}

impl SimReader {
    /// Creates the simulated card a `sim:` URI describes: its profile (built-in or
    /// file), its state file and its seed.
    pub fn open(uri: &SimUri) -> Result<SimReader, ReaderError> {
        let uri_text = ReaderUri::Sim(uri.clone()).to_string();
        let card_error = |source| ReaderError::SimCard {
            uri: uri_text.clone(),
            source: Box::new(source),
        };
        let profile = if uri.profile_is_file() {
            Profile::load(Path::new(&uri.profile))
        } else {
            Profile::builtin(&uri.profile)
        }
        .map_err(|error| card_error(error.into()))?;
        let mut options = SimOptions {
            state_file: uri.state.clone(),
            ..SimOptions::default()
        };
        if let Some(seed) = uri.seed {
            options.random = Box::new(SeededRandom::new(seed));
        }
        let line_behaviour = profile.line_behaviour();
        let card = SimCard::new(profile, options).map_err(card_error)?;
        let mut reader = SimReader::with_card(uri_text, Box::new(card));
        reader.line_behaviour = line_behaviour;
        Ok(reader)
    }

    /// Wraps any card, e.g. one a test built itself.
    pub fn with_card(name: impl Into<String>, card: Box<dyn SmartCard + Send>) -> SimReader {
        SimReader {
            name: name.into(),
            card,
            powered: false,
            line_behaviour: LineBehaviour::default(),
        }
    }

    /// How the card's profile says it behaves on a serial line (NULL bytes,
    /// byte-by-byte acknowledgements, waiting time extensions); the default for a card
    /// given to [`SimReader::with_card`].
    pub fn line_behaviour(&self) -> LineBehaviour {
        self.line_behaviour
    }
}

impl Reader for SimReader {
    fn name(&self) -> &str {
        &self.name
    }

    fn power_on(&mut self) -> Result<Vec<u8>, ReaderError> {
        self.powered = true;
        Ok(self.card.power_on())
    }

    fn reset(&mut self, kind: ResetKind) -> Result<Vec<u8>, ReaderError> {
        self.powered = true;
        Ok(self.card.reset(kind))
    }

    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ReaderError> {
        if !self.powered {
            return Err(ReaderError::NotPowered {
                reader: self.name.clone(),
            });
        }
        Ok(self.card.transmit(command))
    }

    fn power_off(&mut self) -> Result<(), ReaderError> {
        self.powered = false;
        self.card.power_off();
        Ok(())
    }
}

/// The built-in cards, one `sim:PROFILE` reader each.
pub fn list() -> Vec<ReaderListing> {
    Profile::builtin_names()
        .iter()
        .map(|name| ReaderListing {
            uri: format!("sim:{name}"),
            description: match Profile::builtin(name) {
                Ok(profile) => profile.description().to_owned(),
                Err(error) => format!("unusable: {error}"),
            },
        })
        .collect()
}
