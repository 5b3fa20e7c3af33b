//! The wire of the network edge as an OpenAPI 3.1 document, made from the Rust types
//! themselves (the flow's messages are the schema): `docs/openapi.json` is its output,
//! and `tests/openapi.rs` fails when the two differ.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::node::{ErrorBody, MailboxPoll, Wire};

/// The OpenAPI document of a node's HTTP edge.
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    let wire = generator.subschema_for::<Wire>();
    let poll = generator.subschema_for::<MailboxPoll>();
    let error = generator.subschema_for::<ErrorBody>();
    let schemas = generator.take_definitions(true);
    let refused = json!({
        "description": "Refused: the caller may not send one of the messages (it does not speak for the sender, or the addressee is not served here); none was handled.",
        "content": { "application/json": { "schema": error } }
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "telepay role edge",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "How the roles of the telepayment system (FR2750275) talk when each is its own process: HTTPS with mutual TLS, the caller named by its certificate ({instance}.{role}.telepay). See docs/deployment.md.",
        },
        "paths": {
            "/v1/messages": {
                "post": {
                    "summary": "Deliver messages of the flow to roles this process hosts",
                    "description": "Each envelope must come from a party the caller speaks for and go to a party served here. The answer carries the messages the handling produced for the caller's parties (an acquirer's G for the front-end's F; the front-end's D, H and K for the terminal whose A or E it handled). Repeating a call is harmless: messages carry their identifiers.",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": wire.clone() } } },
                    "responses": {
                        "200": { "description": "Handled; the messages for the caller.", "content": { "application/json": { "schema": wire.clone() } } },
                        "403": refused.clone(),
                    }
                }
            },
            "/v1/mailbox": {
                "post": {
                    "summary": "A terminal takes the messages waiting for it",
                    "description": "Messages for a terminal produced when it was not on the line (a deadline's). Waits up to wait_ms (at most 30 s) for one to come.",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": poll } } },
                    "responses": {
                        "200": { "description": "What waited (possibly nothing).", "content": { "application/json": { "schema": wire } } },
                        "403": refused,
                    }
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": { "200": { "description": "The process serves.", "content": { "text/plain": { "schema": { "type": "string", "const": "ok" } } } } }
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: the roles are open",
                    "responses": { "200": { "description": "The parties served here.", "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "ready": { "type": "boolean" }, "serves": { "type": "array", "items": { "type": "string" } } },
                        "required": ["ready", "serves"]
                    } } } } }
                }
            }
        },
        "components": { "schemas": schemas }
    })
}
