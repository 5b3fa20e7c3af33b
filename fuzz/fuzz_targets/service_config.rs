//! Fuzz target `service_config`: what `telepay serve` reads before anything else — a
//! service's configuration file (`ServiceConfig::from_toml_str`), the party addresses
//! in it (`frontend`, `payer:t1`, `acquirer:NAME`…) and its routes' URLs
//! (`route_address`) — and the wire's body (`Wire`, the envelopes of
//! `POST /v1/messages`).
//!
//! Checked on every input: nothing panics; errors format. On success: a party address
//! writes back to the same text and reads back equal; a parsed configuration builds its
//! switchboard and every route's address is either an `IP:PORT` or a clear error; a
//! wire body writes and reads back equal.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use telepay::messages::Party;
use telepay::net::config::ServiceConfig;
use telepay::net::link::route_address;
use telepay::net::node::Wire;
use telepay::net::switchboard::PartyAddress;

fuzz_target!(|input: &[u8]| check(input));

fn check(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        let _ = serde_json::from_slice::<Wire>(input);
        return;
    };
    match text.parse::<PartyAddress>() {
        Ok(address) => {
            let written = address.to_string();
            assert_eq!(written, text);
            assert_eq!(written.parse::<PartyAddress>().as_ref(), Ok(&address));
        }
        Err(error) => {
            let _ = format!("{error} {error:?}");
        }
    }
    match ServiceConfig::from_toml_str(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            let board = config.switchboard([Party::FrontEnd]);
            assert_eq!(board.routes().len(), config.routes.len());
            for route in config.route_list() {
                match route_address(&route) {
                    Ok(address) => assert!(route.url.contains(&address.port().to_string())),
                    Err(error) => {
                        let _ = error.to_string();
                    }
                }
            }
        }
        Err(error) => {
            let _ = format!("{error} {error:?}");
        }
    }
    if let Ok(wire) = serde_json::from_str::<Wire>(text) {
        let written = serde_json::to_vec(&wire).expect("a wire body writes");
        assert_eq!(serde_json::from_slice::<Wire>(&written).ok(), Some(wire));
    }
}
