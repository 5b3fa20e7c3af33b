//! Instruction bytes: the interindustry commands of ISO 7816-4 §5.4.2 Table 4 (and
//! the parts of ISO 7816 that define the others) and the EMV commands of EMV Book 3
//! §6.5 and Book 2 (issuer scripts), named by [`instruction_name`].

/// Instruction byte values.
///
/// Interindustry values apply with an interindustry class (CLA `00`–`1F`, `40`–`7F`);
/// the EMV proprietary ones (marked) with a proprietary class (CLA b8 set, e.g. `80`,
/// `84`, `8C`).
pub mod ins {
    /// DEACTIVATE FILE (ISO 7816-9).
    pub const DEACTIVATE_FILE: u8 = 0x04;
    /// ERASE RECORD(S).
    pub const ERASE_RECORDS: u8 = 0x0C;
    /// ERASE BINARY.
    pub const ERASE_BINARY: u8 = 0x0E;
    /// ERASE BINARY, odd INS (offset in a data object).
    pub const ERASE_BINARY_ODD: u8 = 0x0F;
    /// PERFORM SCQL OPERATION (ISO 7816-7).
    pub const PERFORM_SCQL_OPERATION: u8 = 0x10;
    /// PERFORM TRANSACTION OPERATION (ISO 7816-7).
    pub const PERFORM_TRANSACTION_OPERATION: u8 = 0x12;
    /// PERFORM USER OPERATION (ISO 7816-7).
    pub const PERFORM_USER_OPERATION: u8 = 0x14;
    /// VERIFY (EMV Book 3 §6.5.12: offline PIN).
    pub const VERIFY: u8 = 0x20;
    /// VERIFY, odd INS.
    pub const VERIFY_ODD: u8 = 0x21;
    /// MANAGE SECURITY ENVIRONMENT.
    pub const MANAGE_SECURITY_ENVIRONMENT: u8 = 0x22;
    /// CHANGE REFERENCE DATA.
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    /// DISABLE VERIFICATION REQUIREMENT.
    pub const DISABLE_VERIFICATION_REQUIREMENT: u8 = 0x26;
    /// ENABLE VERIFICATION REQUIREMENT.
    pub const ENABLE_VERIFICATION_REQUIREMENT: u8 = 0x28;
    /// PERFORM SECURITY OPERATION, "PSO" (ISO 7816-8).
    pub const PERFORM_SECURITY_OPERATION: u8 = 0x2A;
    /// RESET RETRY COUNTER.
    pub const RESET_RETRY_COUNTER: u8 = 0x2C;
    /// ACTIVATE FILE (ISO 7816-9).
    pub const ACTIVATE_FILE: u8 = 0x44;
    /// GENERATE ASYMMETRIC KEY PAIR (ISO 7816-8).
    pub const GENERATE_ASYMMETRIC_KEY_PAIR: u8 = 0x46;
    /// MANAGE CHANNEL.
    pub const MANAGE_CHANNEL: u8 = 0x70;
    /// EXTERNAL AUTHENTICATE (also MUTUAL AUTHENTICATE; EMV Book 3 §6.5.4).
    pub const EXTERNAL_AUTHENTICATE: u8 = 0x82;
    /// GET CHALLENGE (EMV Book 3 §6.5.6).
    pub const GET_CHALLENGE: u8 = 0x84;
    /// GENERAL AUTHENTICATE.
    pub const GENERAL_AUTHENTICATE: u8 = 0x86;
    /// GENERAL AUTHENTICATE, odd INS.
    pub const GENERAL_AUTHENTICATE_ODD: u8 = 0x87;
    /// INTERNAL AUTHENTICATE (EMV Book 3 §6.5.9).
    pub const INTERNAL_AUTHENTICATE: u8 = 0x88;
    /// SEARCH BINARY.
    pub const SEARCH_BINARY: u8 = 0xA0;
    /// SEARCH BINARY, odd INS.
    pub const SEARCH_BINARY_ODD: u8 = 0xA1;
    /// SEARCH RECORD.
    pub const SEARCH_RECORD: u8 = 0xA2;
    /// SELECT (EMV Book 1 §11.3).
    pub const SELECT: u8 = 0xA4;
    /// READ BINARY.
    pub const READ_BINARY: u8 = 0xB0;
    /// READ BINARY, odd INS.
    pub const READ_BINARY_ODD: u8 = 0xB1;
    /// READ RECORD(S) (EMV Book 3 §6.5.11).
    pub const READ_RECORD: u8 = 0xB2;
    /// READ RECORD(S), odd INS.
    pub const READ_RECORD_ODD: u8 = 0xB3;
    /// GET RESPONSE (ISO 7816-4; EMV Book 1 §9.3.1.3 for T=0).
    pub const GET_RESPONSE: u8 = 0xC0;
    /// ENVELOPE.
    pub const ENVELOPE: u8 = 0xC2;
    /// ENVELOPE, odd INS.
    pub const ENVELOPE_ODD: u8 = 0xC3;
    /// GET DATA (interindustry `00 CA`; EMV uses the proprietary class, `80 CA`,
    /// Book 3 §6.5.7).
    pub const GET_DATA: u8 = 0xCA;
    /// GET DATA, odd INS.
    pub const GET_DATA_ODD: u8 = 0xCB;
    /// WRITE BINARY.
    pub const WRITE_BINARY: u8 = 0xD0;
    /// WRITE BINARY, odd INS.
    pub const WRITE_BINARY_ODD: u8 = 0xD1;
    /// WRITE RECORD.
    pub const WRITE_RECORD: u8 = 0xD2;
    /// UPDATE BINARY.
    pub const UPDATE_BINARY: u8 = 0xD6;
    /// UPDATE BINARY, odd INS.
    pub const UPDATE_BINARY_ODD: u8 = 0xD7;
    /// PUT DATA.
    pub const PUT_DATA: u8 = 0xDA;
    /// PUT DATA, odd INS.
    pub const PUT_DATA_ODD: u8 = 0xDB;
    /// UPDATE RECORD.
    pub const UPDATE_RECORD: u8 = 0xDC;
    /// UPDATE RECORD, odd INS.
    pub const UPDATE_RECORD_ODD: u8 = 0xDD;
    /// CREATE FILE (ISO 7816-9).
    pub const CREATE_FILE: u8 = 0xE0;
    /// APPEND RECORD.
    pub const APPEND_RECORD: u8 = 0xE2;
    /// DELETE FILE (ISO 7816-9).
    pub const DELETE_FILE: u8 = 0xE4;
    /// TERMINATE DF (ISO 7816-9).
    pub const TERMINATE_DF: u8 = 0xE6;
    /// TERMINATE EF (ISO 7816-9).
    pub const TERMINATE_EF: u8 = 0xE8;
    /// TERMINATE CARD USAGE (ISO 7816-9).
    pub const TERMINATE_CARD_USAGE: u8 = 0xFE;

    /// EMV, proprietary class: CARD BLOCK (Book 3 §6.5.3, issuer script).
    pub const CARD_BLOCK: u8 = 0x16;
    /// EMV, proprietary class: APPLICATION UNBLOCK (Book 3 §6.5.2, issuer script).
    pub const APPLICATION_UNBLOCK: u8 = 0x18;
    /// EMV, proprietary class: APPLICATION BLOCK (Book 3 §6.5.1, issuer script).
    pub const APPLICATION_BLOCK: u8 = 0x1E;
    /// EMV, proprietary class: PIN CHANGE/UNBLOCK (Book 3 §6.5.10, issuer script).
    pub const PIN_CHANGE_UNBLOCK: u8 = 0x24;
    /// EMV, proprietary class: GET PROCESSING OPTIONS (Book 3 §6.5.8).
    pub const GET_PROCESSING_OPTIONS: u8 = 0xA8;
    /// EMV, proprietary class: GENERATE APPLICATION CRYPTOGRAM (Book 3 §6.5.5).
    pub const GENERATE_AC: u8 = 0xAE;
}

/// Names of the interindustry instructions (ISO 7816-4 §5.4.2 Table 4).
const INTERINDUSTRY: &[(u8, &str)] = &[
    (ins::DEACTIVATE_FILE, "DEACTIVATE FILE"),
    (ins::ERASE_RECORDS, "ERASE RECORD(S)"),
    (ins::ERASE_BINARY, "ERASE BINARY"),
    (ins::ERASE_BINARY_ODD, "ERASE BINARY"),
    (ins::PERFORM_SCQL_OPERATION, "PERFORM SCQL OPERATION"),
    (
        ins::PERFORM_TRANSACTION_OPERATION,
        "PERFORM TRANSACTION OPERATION",
    ),
    (ins::PERFORM_USER_OPERATION, "PERFORM USER OPERATION"),
    (ins::VERIFY, "VERIFY"),
    (ins::VERIFY_ODD, "VERIFY"),
    (
        ins::MANAGE_SECURITY_ENVIRONMENT,
        "MANAGE SECURITY ENVIRONMENT",
    ),
    (ins::CHANGE_REFERENCE_DATA, "CHANGE REFERENCE DATA"),
    (
        ins::DISABLE_VERIFICATION_REQUIREMENT,
        "DISABLE VERIFICATION REQUIREMENT",
    ),
    (
        ins::ENABLE_VERIFICATION_REQUIREMENT,
        "ENABLE VERIFICATION REQUIREMENT",
    ),
    (
        ins::PERFORM_SECURITY_OPERATION,
        "PERFORM SECURITY OPERATION",
    ),
    (ins::RESET_RETRY_COUNTER, "RESET RETRY COUNTER"),
    (ins::ACTIVATE_FILE, "ACTIVATE FILE"),
    (
        ins::GENERATE_ASYMMETRIC_KEY_PAIR,
        "GENERATE ASYMMETRIC KEY PAIR",
    ),
    (ins::MANAGE_CHANNEL, "MANAGE CHANNEL"),
    (ins::EXTERNAL_AUTHENTICATE, "EXTERNAL AUTHENTICATE"),
    (ins::GET_CHALLENGE, "GET CHALLENGE"),
    (ins::GENERAL_AUTHENTICATE, "GENERAL AUTHENTICATE"),
    (ins::GENERAL_AUTHENTICATE_ODD, "GENERAL AUTHENTICATE"),
    (ins::INTERNAL_AUTHENTICATE, "INTERNAL AUTHENTICATE"),
    (ins::SEARCH_BINARY, "SEARCH BINARY"),
    (ins::SEARCH_BINARY_ODD, "SEARCH BINARY"),
    (ins::SEARCH_RECORD, "SEARCH RECORD"),
    (ins::SELECT, "SELECT"),
    (ins::READ_BINARY, "READ BINARY"),
    (ins::READ_BINARY_ODD, "READ BINARY"),
    (ins::READ_RECORD, "READ RECORD"),
    (ins::READ_RECORD_ODD, "READ RECORD"),
    (ins::GET_RESPONSE, "GET RESPONSE"),
    (ins::ENVELOPE, "ENVELOPE"),
    (ins::ENVELOPE_ODD, "ENVELOPE"),
    (ins::GET_DATA, "GET DATA"),
    (ins::GET_DATA_ODD, "GET DATA"),
    (ins::WRITE_BINARY, "WRITE BINARY"),
    (ins::WRITE_BINARY_ODD, "WRITE BINARY"),
    (ins::WRITE_RECORD, "WRITE RECORD"),
    (ins::UPDATE_BINARY, "UPDATE BINARY"),
    (ins::UPDATE_BINARY_ODD, "UPDATE BINARY"),
    (ins::PUT_DATA, "PUT DATA"),
    (ins::PUT_DATA_ODD, "PUT DATA"),
    (ins::UPDATE_RECORD, "UPDATE RECORD"),
    (ins::UPDATE_RECORD_ODD, "UPDATE RECORD"),
    (ins::CREATE_FILE, "CREATE FILE"),
    (ins::APPEND_RECORD, "APPEND RECORD"),
    (ins::DELETE_FILE, "DELETE FILE"),
    (ins::TERMINATE_DF, "TERMINATE DF"),
    (ins::TERMINATE_EF, "TERMINATE EF"),
    (ins::TERMINATE_CARD_USAGE, "TERMINATE CARD USAGE"),
];

/// Names of the EMV commands sent with a proprietary class (EMV Book 3 §6.5: CLA
/// `80`, or `84`/`8C` with secure messaging for the issuer-script commands).
const EMV_PROPRIETARY: &[(u8, &str)] = &[
    (ins::CARD_BLOCK, "CARD BLOCK"),
    (ins::APPLICATION_UNBLOCK, "APPLICATION UNBLOCK"),
    (ins::APPLICATION_BLOCK, "APPLICATION BLOCK"),
    (ins::PIN_CHANGE_UNBLOCK, "PIN CHANGE/UNBLOCK"),
    (ins::GET_PROCESSING_OPTIONS, "GET PROCESSING OPTIONS"),
    (ins::GENERATE_AC, "GENERATE AC"),
    (ins::GET_DATA, "GET DATA"),
];

/// The name of the command with this class and instruction byte, if it is an
/// ISO 7816-4 interindustry or an EMV command.
///
/// The class decides which table applies (ISO 7816-4 §5.4.1): b8 = 0 with b7–b6 ≠ 01
/// (CLA `00`–`1F`, `40`–`7F`) is interindustry; b8 = 1 (CLA `80`–`FE`) is proprietary,
/// where only the EMV commands are named (`80 A8` is GET PROCESSING OPTIONS, `00 A8`
/// is nothing); CLA `20`–`3F` is reserved and `FF` invalid, so neither is named.
pub fn instruction_name(cla: u8, ins: u8) -> Option<&'static str> {
    let table = match cla {
        0x00..=0x1F | 0x40..=0x7F => INTERINDUSTRY,
        0x80..=0xFE => EMV_PROPRIETARY,
        0x20..=0x3F | 0xFF => return None,
    };
    table
        .iter()
        .find(|(code, _)| *code == ins)
        .map(|(_, name)| *name)
}
