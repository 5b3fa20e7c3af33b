//! Where each message of the flow goes when the roles run as separate processes, and
//! who may send it: the network edge's rules, as pure code over values.
//!
//! A process hosts some parties (the front-end; a service server; an acquirer; a
//! terminal's client and payer devices). A message to one of them is handled here
//! ([`Destination::Local`]). A message to the party that made the current call rides
//! back on that call's answer ([`Destination::Caller`]) — how an acquirer answers the
//! front-end that asked, whichever of several front-ends it was. A message to a party
//! the configuration routes is sent to that peer ([`Destination::Peers`]; several
//! processes of one party are taken in turn, each standing in for the others). A
//! message to a terminal that is not on the current call waits in that terminal's mailbox, which the
//! terminal polls ([`Destination::Mailbox`]): terminals call out, nobody calls them.
//!
//! Who may speak as a party is decided by the peer's certificate name
//! ([`crate::net::pki::PeerName`]), checked by mutual TLS before any of this runs: a
//! terminal `t1` speaks for `client:t1` and `payer:t1` only; a front-end for the
//! front-end; every other peer for the parties its configuration gives it
//! ([`Switchboard::allow`], and each route's party for its peer).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::messages::{AcquirerId, Party, ProviderId, TerminalId};

use super::pki::{PeerName, ServiceRole};

/// Why a party's address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not one of the address forms.
    #[error(
        "party address {input:?}: expected frontend, client:TERMINAL, payer:TERMINAL, \
         server:PROVIDER or acquirer:ACQUIRER"
    )]
    Unknown {
        /// The text given.
        input: String,
    },
    /// The name after the colon is empty or holds a character outside
    /// `[A-Za-z0-9._-]`.
    #[error("party address {input:?}: the name after {kind:?} must be 1 to 64 of [A-Za-z0-9._-]")]
    BadName {
        /// The text given.
        input: String,
        /// The kind before the colon.
        kind: String,
    },
}

/// A [`Party`] as configuration files and logs write it: `frontend`, `client:t1`,
/// `payer:t1`, `server:demo-provider`, `acquirer:bank-card-acquirer`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartyAddress(pub Party);

impl fmt::Display for PartyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Party::FrontEnd => f.write_str("frontend"),
            Party::Client(terminal) => write!(f, "client:{terminal}"),
            Party::Payer(terminal) => write!(f, "payer:{terminal}"),
            Party::Server(provider) => write!(f, "server:{provider}"),
            Party::Acquirer(acquirer) => write!(f, "acquirer:{acquirer}"),
        }
    }
}

impl FromStr for PartyAddress {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<PartyAddress, AddressError> {
        if input == "frontend" {
            return Ok(PartyAddress(Party::FrontEnd));
        }
        let unknown = || AddressError::Unknown {
            input: input.to_owned(),
        };
        let (kind, name) = input.split_once(':').ok_or_else(unknown)?;
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
        let make: fn(&str) -> Party = match kind {
            "client" => |name| Party::Client(TerminalId::from(name)),
            "payer" => |name| Party::Payer(TerminalId::from(name)),
            "server" => |name| Party::Server(ProviderId::from(name)),
            "acquirer" => |name| Party::Acquirer(AcquirerId::from(name)),
            _ => return Err(unknown()),
        };
        if !valid {
            return Err(AddressError::BadName {
                input: input.to_owned(),
                kind: kind.to_owned(),
            });
        }
        Ok(PartyAddress(make(name)))
    }
}

impl serde::Serialize for PartyAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PartyAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A peer this process sends messages to: its base URL and the certificate name it
/// must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its base URL, e.g. `https://127.0.0.1:7402`.
    pub url: String,
    /// The name its certificate carries.
    pub peer: PeerName,
}

/// Where a message goes from this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// To a party this process hosts.
    Local,
    /// Back on the current call's answer.
    Caller,
    /// To the routed peers of that party: the indexes of their routes in
    /// [`Switchboard::routes`], in the order to try them (several processes of one
    /// acquirer share its journal; the first is the next in turn, the others stand by).
    Peers(Vec<usize>),
    /// To the terminal's mailbox.
    Mailbox(TerminalId),
    /// Nowhere: no route, not a terminal. The message is dropped (and logged).
    Nowhere,
}

/// Why a peer may not send a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The message claims to come from a party the peer does not speak for.
    #[error("{peer} may not speak as {claimed}")]
    Impersonation {
        /// The peer, as its certificate names it.
        peer: String,
        /// The party the message claims to come from.
        claimed: PartyAddress,
    },
    /// The message is addressed to a party this process does not host: it does not
    /// relay for others.
    #[error("{to} is not served here (this process serves {here})")]
    NotServedHere {
        /// The addressee.
        to: PartyAddress,
        /// What this process serves.
        here: String,
    },
}

/// The network edge's rules for one process: the parties it hosts, its routes, and
/// which peers speak for which parties.
#[derive(Debug, Clone, Default)]
pub struct Switchboard {
    local: BTreeSet<Party>,
    routes: Vec<Route>,
    routed: BTreeMap<Party, Vec<usize>>,
    /// The next route in turn for each party with several, so that they share the load.
    turn: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Parties whose messages all go to one route at a time ([`Switchboard::sticky`]):
    /// the position, among the party's routes, of the current one.
    sticky: BTreeMap<Party, std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    speaks_for: BTreeMap<String, BTreeSet<Party>>,
}

impl Switchboard {
    /// A switchboard for a process hosting `local`.
    pub fn new(local: impl IntoIterator<Item = Party>) -> Switchboard {
        Switchboard {
            local: local.into_iter().collect(),
            ..Switchboard::default()
        }
    }

    /// Sends messages to `party` to the peer at `route`, which then also speaks for
    /// `party` when it answers or calls. Several routes for one party are several
    /// processes of it: taken in turn, each standing in for the others when they fail.
    pub fn route(mut self, party: Party, route: Route) -> Switchboard {
        self.allow_name(route.peer.dns_name(), party.clone());
        self.routes.push(route);
        self.routed
            .entry(party)
            .or_default()
            .push(self.routes.len() - 1);
        self
    }

    /// Sends every message to `party` to one of its routes, the first, until
    /// [`Switchboard::fail_over`] moves them to the next; a failed call is not tried on
    /// another route. A terminal's purchase lives in one front-end's memory: spreading
    /// its messages over several front-ends would lose it.
    pub fn sticky(mut self, party: Party) -> Switchboard {
        self.sticky.insert(party, std::sync::Arc::default());
        self
    }

    /// Moves a sticky `party`'s messages to its next route (after the last, the first
    /// again); the route now used, or `None` for a party that is not sticky or has no
    /// route.
    pub fn fail_over(&self, party: &Party) -> Option<usize> {
        let position = self.sticky.get(party)?;
        let routes = self.routed.get(party).filter(|routes| !routes.is_empty())?;
        let next = position
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1);
        routes.get(next % routes.len()).copied()
    }

    /// The route a sticky `party`'s messages go to now; for another party, its first.
    pub fn current(&self, party: &Party) -> Option<usize> {
        let routes = self.routed.get(party).filter(|routes| !routes.is_empty())?;
        let position = self.sticky.get(party).map_or(0, |position| {
            position.load(std::sync::atomic::Ordering::Relaxed)
        });
        routes.get(position % routes.len()).copied()
    }

    /// How many routes `party` has.
    pub fn route_count(&self, party: &Party) -> usize {
        self.routed.get(party).map_or(0, Vec::len)
    }

    /// Lets `peer` speak for `party` (a card acquirer for its acquirer name at the
    /// telecollection centre, a service server for its provider name).
    pub fn allow(mut self, peer: &PeerName, party: Party) -> Switchboard {
        self.allow_name(peer.dns_name(), party);
        self
    }

    fn allow_name(&mut self, peer: String, party: Party) {
        self.speaks_for.entry(peer).or_default().insert(party);
    }

    /// The parties this process hosts.
    pub fn local(&self) -> &BTreeSet<Party> {
        &self.local
    }

    /// The routes, in the order given.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Whether `peer` speaks for `party`: a terminal for its own devices, a front-end
    /// for the front-end, anyone for what the configuration gives it.
    pub fn speaks_for(&self, peer: &PeerName, party: &Party) -> bool {
        let by_role = match (peer.role(), party) {
            (ServiceRole::Terminal, Party::Client(terminal) | Party::Payer(terminal)) => {
                terminal.0 == peer.instance()
            }
            (ServiceRole::FrontEnd, Party::FrontEnd) => true,
            _ => false,
        };
        by_role
            || self
                .speaks_for
                .get(&peer.dns_name())
                .is_some_and(|parties| parties.contains(party))
    }

    /// Checks a message `peer` sends from `from` to `to` on a call to this process: it
    /// must speak for `from`, and `to` must be hosted here.
    ///
    /// # Errors
    /// [`Refusal`] naming what was wrong.
    pub fn admit(&self, peer: &PeerName, from: &Party, to: &Party) -> Result<(), Refusal> {
        if !self.speaks_for(peer, from) {
            return Err(Refusal::Impersonation {
                peer: peer.dns_name(),
                claimed: PartyAddress(from.clone()),
            });
        }
        if !self.local.contains(to) {
            return Err(Refusal::NotServedHere {
                to: PartyAddress(to.clone()),
                here: self
                    .local
                    .iter()
                    .map(|party| PartyAddress(party.clone()).to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(())
    }

    /// Checks a message that came back on the answer of a call to the peer of
    /// `route`: it must come from a party that peer speaks for.
    ///
    /// # Errors
    /// [`Refusal::Impersonation`].
    pub fn admit_answer(&self, route: usize, from: &Party) -> Result<(), Refusal> {
        match self.routes.get(route) {
            Some(route) if self.speaks_for(&route.peer, from) => Ok(()),
            Some(route) => Err(Refusal::Impersonation {
                peer: route.peer.dns_name(),
                claimed: PartyAddress(from.clone()),
            }),
            None => Err(Refusal::Impersonation {
                peer: format!("route {route}"),
                claimed: PartyAddress(from.clone()),
            }),
        }
    }

    /// Where a message to `to` goes, `caller` being the peer of the current call (none
    /// for a deadline's messages, or a call this process made).
    pub fn destination(&self, to: &Party, caller: Option<&PeerName>) -> Destination {
        if self.local.contains(to) {
            return Destination::Local;
        }
        if caller.is_some_and(|caller| self.speaks_for(caller, to)) {
            return Destination::Caller;
        }
        if self.sticky.contains_key(to) {
            return match self.current(to) {
                Some(route) => Destination::Peers(vec![route]),
                None => Destination::Nowhere,
            };
        }
        if let Some(routes) = self.routed.get(to) {
            let first = match routes.len() {
                0 | 1 => 0,
                count => self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % count,
            };
            let mut order = routes.clone();
            order.rotate_left(first);
            return Destination::Peers(order);
        }
        match to {
            Party::Client(terminal) | Party::Payer(terminal) => {
                Destination::Mailbox(terminal.clone())
            }
            _ => Destination::Nowhere,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> PeerName {
        PeerName::from_dns_name(text).unwrap()
    }

    fn party(text: &str) -> Party {
        text.parse::<PartyAddress>().unwrap().0
    }

    /// A front-end `fe1` routing to one provider and one card acquirer.
    fn front_end() -> Switchboard {
        Switchboard::new([Party::FrontEnd])
            .route(
                party("server:demo-provider"),
                Route {
                    url: "https://127.0.0.1:7402".into(),
                    peer: peer("p1.provider.telepay"),
                },
            )
            .route(
                party("acquirer:bank-card-acquirer"),
                Route {
                    url: "https://127.0.0.1:7403".into(),
                    peer: peer("acq1.acquirer-card.telepay"),
                },
            )
    }

    #[test]
    fn party_addresses_round_trip_and_bad_ones_say_why() {
        for text in [
            "frontend",
            "client:t1",
            "payer:t1",
            "server:demo-provider",
            "acquirer:bank-card-acquirer",
        ] {
            assert_eq!(text.parse::<PartyAddress>().unwrap().to_string(), text);
        }
        assert_eq!(
            "front-end".parse::<PartyAddress>(),
            Err(AddressError::Unknown {
                input: "front-end".into()
            })
        );
        assert_eq!(
            "payer:".parse::<PartyAddress>(),
            Err(AddressError::BadName {
                input: "payer:".into(),
                kind: "payer".into()
            })
        );
        assert_eq!(
            "server:a b".parse::<PartyAddress>(),
            Err(AddressError::BadName {
                input: "server:a b".into(),
                kind: "server".into()
            })
        );
    }

    #[test]
    fn a_terminal_speaks_for_its_own_devices_only() {
        let board = front_end();
        let t1 = peer("t1.terminal.telepay");
        assert!(board.speaks_for(&t1, &party("client:t1")));
        assert!(board.speaks_for(&t1, &party("payer:t1")));
        assert!(!board.speaks_for(&t1, &party("payer:t2")));
        assert!(!board.speaks_for(&t1, &Party::FrontEnd));
        assert!(!board.speaks_for(&t1, &party("acquirer:bank-card-acquirer")));
    }

    #[test]
    fn only_the_routed_acquirer_answers_as_the_acquirer() {
        let board = front_end();
        assert!(board.speaks_for(
            &peer("acq1.acquirer-card.telepay"),
            &party("acquirer:bank-card-acquirer")
        ));
        // Another card acquirer's certificate, or the provider's, does not.
        assert!(!board.speaks_for(
            &peer("acq2.acquirer-card.telepay"),
            &party("acquirer:bank-card-acquirer")
        ));
        assert_eq!(
            board.admit_answer(0, &party("acquirer:bank-card-acquirer")),
            Err(Refusal::Impersonation {
                peer: "p1.provider.telepay".into(),
                claimed: PartyAddress(party("acquirer:bank-card-acquirer")),
            })
        );
        assert_eq!(
            board.admit_answer(1, &party("acquirer:bank-card-acquirer")),
            Ok(())
        );
    }

    #[test]
    fn a_call_is_admitted_only_from_a_party_the_caller_speaks_for_to_a_party_served_here() {
        let board = front_end();
        let t1 = peer("t1.terminal.telepay");
        assert_eq!(
            board.admit(&t1, &party("client:t1"), &Party::FrontEnd),
            Ok(())
        );
        assert_eq!(
            board.admit(&t1, &party("client:t2"), &Party::FrontEnd),
            Err(Refusal::Impersonation {
                peer: "t1.terminal.telepay".into(),
                claimed: PartyAddress(party("client:t2")),
            })
        );
        // The front-end does not relay: a terminal cannot reach the acquirer through it.
        assert_eq!(
            board.admit(
                &t1,
                &party("payer:t1"),
                &party("acquirer:bank-card-acquirer")
            ),
            Err(Refusal::NotServedHere {
                to: PartyAddress(party("acquirer:bank-card-acquirer")),
                here: "frontend".into(),
            })
        );
    }

    #[test]
    fn messages_go_home_back_to_the_caller_to_a_route_or_to_a_mailbox() {
        let board = front_end();
        let t1 = peer("t1.terminal.telepay");
        assert_eq!(
            board.destination(&Party::FrontEnd, None),
            Destination::Local
        );
        assert_eq!(
            board.destination(&party("payer:t1"), Some(&t1)),
            Destination::Caller
        );
        // The same message produced by a deadline, with nobody on the line.
        assert_eq!(
            board.destination(&party("payer:t1"), None),
            Destination::Mailbox(TerminalId::from("t1"))
        );
        // Another terminal than the caller: its mailbox.
        assert_eq!(
            board.destination(&party("client:t2"), Some(&t1)),
            Destination::Mailbox(TerminalId::from("t2"))
        );
        assert_eq!(
            board.destination(&party("acquirer:bank-card-acquirer"), Some(&t1)),
            Destination::Peers(vec![1])
        );
        assert_eq!(
            board.destination(&party("acquirer:wallet-acquirer"), None),
            Destination::Nowhere
        );
    }

    #[test]
    fn an_acquirer_answers_whichever_front_end_called() {
        let acquirer = Switchboard::new([party("acquirer:bank-card-acquirer")]);
        for caller in ["fe1.frontend.telepay", "fe2.frontend.telepay"] {
            assert_eq!(
                acquirer.destination(&Party::FrontEnd, Some(&peer(caller))),
                Destination::Caller
            );
        }
        assert_eq!(
            acquirer.destination(&Party::FrontEnd, None),
            Destination::Nowhere
        );
    }
}

#[cfg(test)]
mod several_processes {
    use super::*;

    #[test]
    fn two_processes_of_one_acquirer_are_taken_in_turn_each_backing_the_other() {
        let acquirer = "acquirer:bank-card-acquirer"
            .parse::<PartyAddress>()
            .unwrap()
            .0;
        let board = Switchboard::new([Party::FrontEnd])
            .route(
                acquirer.clone(),
                Route {
                    url: "https://127.0.0.1:7403".into(),
                    peer: PeerName::from_dns_name("acq1.acquirer-card.telepay").unwrap(),
                },
            )
            .route(
                acquirer.clone(),
                Route {
                    url: "https://127.0.0.1:7413".into(),
                    peer: PeerName::from_dns_name("acq2.acquirer-card.telepay").unwrap(),
                },
            );
        let turns: Vec<Destination> = (0..3).map(|_| board.destination(&acquirer, None)).collect();
        assert_eq!(
            turns,
            [
                Destination::Peers(vec![0, 1]),
                Destination::Peers(vec![1, 0]),
                Destination::Peers(vec![0, 1]),
            ]
        );
        // Both answer as the acquirer.
        assert_eq!(board.admit_answer(0, &acquirer), Ok(()));
        assert_eq!(board.admit_answer(1, &acquirer), Ok(()));
    }

    #[test]
    fn a_terminal_sticks_to_one_front_end_until_it_fails_over() {
        let front_end = |url: &str, name: &str| Route {
            url: url.into(),
            peer: PeerName::from_dns_name(name).unwrap(),
        };
        let terminal = TerminalId::from("t1");
        let board = Switchboard::new([Party::Client(terminal.clone()), Party::Payer(terminal)])
            .sticky(Party::FrontEnd)
            .route(
                Party::FrontEnd,
                front_end("https://127.0.0.1:7401", "fe1.frontend.telepay"),
            )
            .route(
                Party::FrontEnd,
                front_end("https://127.0.0.1:7411", "fe2.frontend.telepay"),
            );
        // Every message to the same one, and no other tried when it fails.
        for _ in 0..3 {
            assert_eq!(
                board.destination(&Party::FrontEnd, None),
                Destination::Peers(vec![0])
            );
        }
        assert_eq!(board.current(&Party::FrontEnd), Some(0));
        assert_eq!(board.fail_over(&Party::FrontEnd), Some(1));
        assert_eq!(
            board.destination(&Party::FrontEnd, None),
            Destination::Peers(vec![1])
        );
        // After the last, the first again.
        assert_eq!(board.fail_over(&Party::FrontEnd), Some(0));
        // A party that is not sticky does not fail over.
        assert_eq!(
            board.fail_over(&Party::Acquirer(AcquirerId::from("bank"))),
            None
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text either reads as a party address that writes back as the same text,
        /// or is refused with a message naming it; nothing panics.
        #[test]
        fn any_text_reads_back_or_is_refused_by_name(text in "\\PC{0,80}") {
            match text.parse::<PartyAddress>() {
                Ok(address) => prop_assert_eq!(address.to_string(), text),
                Err(error) => {
                    let quoted = format!("{text:?}");
                    prop_assert!(error.to_string().contains(&quoted));
                }
            }
        }

        /// Every party of the flow has an address that reads back as itself.
        #[test]
        fn every_party_round_trips(kind in 0u8..5, name in "[A-Za-z0-9._-]{1,64}") {
            let party = match kind {
                0 => Party::FrontEnd,
                1 => Party::Client(TerminalId::from(name)),
                2 => Party::Payer(TerminalId::from(name)),
                3 => Party::Server(ProviderId::from(name)),
                _ => Party::Acquirer(AcquirerId::from(name)),
            };
            let text = PartyAddress(party.clone()).to_string();
            prop_assert_eq!(text.parse::<PartyAddress>(), Ok(PartyAddress(party)));
        }
    }
}
