//! The EMV tag dictionary: every data element of EMV 4.4 Book 3 Annex A (Table 33), then
//! the EMV Contactless Book C-2 / C-3 (and Book B entry point) elements met on real cards
//! and readers, one row per tag, sorted by tag.
//!
//! Lengths are in bytes as the Annex gives them; where it says "var." the row gives the
//! bound it states (252 for most templates) or 255. Where two contactless kernels give the
//! same proprietary tag different meanings (e.g. `9F6E`), the name says both.

use serde::Serialize;

use super::TagNumber;

/// The data element format of EMV 4.4 Book 3 §4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Format {
    /// `a`: alphabetic, one character per byte (`a`–`z`, `A`–`Z`).
    Alpha,
    /// `an`: alphanumeric, one character per byte (letters and digits).
    AlphaNumeric,
    /// `ans`: alphanumeric special, one character per byte (ISO/IEC 8859 common set).
    AlphaNumericSpecial,
    /// `b`: binary, bits or bytes with a meaning of their own.
    Binary,
    /// `cn`: compressed numeric, BCD digits left-justified and padded with trailing `F`.
    CompressedNumeric,
    /// `n`: numeric, BCD digits right-justified and padded with leading zeros.
    Numeric,
    /// `var.`: a template (constructed, its value is BER-TLV) or a structure of its own.
    Variable,
}

/// Who provides a data element (the "Source" column of Book 3 Annex A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// The card (ICC).
    Icc,
    /// The terminal.
    Terminal,
    /// The issuer, through the authorisation response.
    Issuer,
    /// The card or the terminal.
    IccOrTerminal,
    /// The issuer or the terminal (e.g. the Authorisation Response Code).
    IssuerOrTerminal,
    /// The contactless kernel itself (Book C-2 internal data).
    Kernel,
}

/// What the dictionary knows of one tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagInfo {
    /// The tag.
    pub tag: TagNumber,
    /// Its EMV name.
    pub name: &'static str,
    /// Its format.
    pub format: Format,
    /// Who provides it.
    pub source: Source,
    /// The templates it appears in (empty when it is sent bare or not sent).
    pub templates: &'static [TagNumber],
    /// Shortest value, in bytes.
    pub min_len: usize,
    /// Longest value, in bytes.
    pub max_len: usize,
}

impl TagInfo {
    /// Whether `len` bytes is a length the dictionary allows for this tag.
    pub fn length_fits(&self, len: usize) -> bool {
        (self.min_len..=self.max_len).contains(&len)
    }
}

use Format::{
    Alpha as A, AlphaNumeric as AN, AlphaNumericSpecial as ANS, Binary as B,
    CompressedNumeric as CN, Numeric as N, Variable as VAR,
};
use Source::{
    Icc as ICC, IccOrTerminal as ICC_T, Issuer as ISS, IssuerOrTerminal as ISS_T, Kernel as KER,
    Terminal as TERM,
};

/// One table row: `row(tag, name, format, source, templates, min, max)`.
const fn row(
    tag: TagNumber,
    name: &'static str,
    format: Format,
    source: Source,
    templates: &'static [TagNumber],
    min_len: usize,
    max_len: usize,
) -> TagInfo {
    TagInfo {
        tag,
        name,
        format,
        source,
        templates,
        min_len,
        max_len,
    }
}

// Template sets, as the Annex writes them.
const NONE: &[TagNumber] = &[];
const T61: &[TagNumber] = &[0x61];
const T61_A5: &[TagNumber] = &[0x61, 0xA5];
const T6F: &[TagNumber] = &[0x6F];
const T70: &[TagNumber] = &[0x70];
const T70_77: &[TagNumber] = &[0x70, 0x77];
const T71_72: &[TagNumber] = &[0x71, 0x72];
const T73_BF0C: &[TagNumber] = &[0x73, 0xBF0C];
const T77_80: &[TagNumber] = &[0x77, 0x80];
const TA5: &[TagNumber] = &[0xA5];
const TBF0C: &[TagNumber] = &[0xBF0C];
const TBF0C_61: &[TagNumber] = &[0xBF0C, 0x61];

/// The table, in the order of the tag bytes as the books list them (`9F4F` < `A5` <
/// `BF0C` < `DF8101`; see [`sort_key`]), checked by a test and relied on by [`lookup`].
#[rustfmt::skip]
const TABLE: &[TagInfo] = &[
    // ---- EMV 4.4 Book 3 Annex A, Table 33 (and the Book 3 bulletins folded into 4.4) ----
    row(0x42,   "Issuer Identification Number (IIN)",                         N,   ICC,   T73_BF0C, 3, 3),
    row(0x4F,   "Application Identifier (AID) - card",                        B,   ICC,   T61,      5, 16),
    row(0x50,   "Application Label",                                          ANS, ICC,   T61_A5,   1, 16),
    row(0x56,   "Track 1 Data",                                               ANS, ICC,   T70,      0, 76),
    row(0x57,   "Track 2 Equivalent Data",                                    B,   ICC,   T70_77,   0, 19),
    row(0x5A,   "Application Primary Account Number (PAN)",                   CN,  ICC,   T70_77,   0, 10),
    row(0x5F20, "Cardholder Name",                                            ANS, ICC,   T70_77,   2, 26),
    row(0x5F24, "Application Expiration Date",                                N,   ICC,   T70_77,   3, 3),
    row(0x5F25, "Application Effective Date",                                 N,   ICC,   T70_77,   3, 3),
    row(0x5F28, "Issuer Country Code",                                        N,   ICC,   T70_77,   2, 2),
    row(0x5F2A, "Transaction Currency Code",                                  N,   TERM,  NONE,     2, 2),
    row(0x5F2D, "Language Preference",                                        AN,  ICC,   TA5,      2, 8),
    row(0x5F30, "Service Code",                                               N,   ICC,   T70_77,   2, 2),
    row(0x5F34, "Application Primary Account Number (PAN) Sequence Number",   N,   ICC,   T70_77,   1, 1),
    row(0x5F36, "Transaction Currency Exponent",                              N,   TERM,  NONE,     1, 1),
    row(0x5F50, "Issuer URL",                                                 ANS, ICC,   TBF0C,    0, 255),
    row(0x5F53, "International Bank Account Number (IBAN)",                   VAR, ICC,   TBF0C,    0, 34),
    row(0x5F54, "Bank Identifier Code (BIC)",                                 VAR, ICC,   TBF0C,    8, 11),
    row(0x5F55, "Issuer Country Code (alpha2 format)",                        A,   ICC,   TBF0C,    2, 2),
    row(0x5F56, "Issuer Country Code (alpha3 format)",                        A,   ICC,   TBF0C,    3, 3),
    row(0x5F57, "Account Type",                                               N,   TERM,  NONE,     1, 1),
    row(0x61,   "Application Template",                                       VAR, ICC,   T70,      0, 252),
    row(0x6F,   "File Control Information (FCI) Template",                    VAR, ICC,   NONE,     0, 252),
    row(0x70,   "READ RECORD Response Message Template",                      VAR, ICC,   NONE,     0, 252),
    row(0x71,   "Issuer Script Template 1",                                   VAR, ISS,   NONE,     0, 255),
    row(0x72,   "Issuer Script Template 2",                                   VAR, ISS,   NONE,     0, 255),
    row(0x73,   "Directory Discretionary Template",                           VAR, ICC,   T61,      0, 252),
    row(0x77,   "Response Message Template Format 2",                         VAR, ICC,   NONE,     0, 255),
    row(0x80,   "Response Message Template Format 1",                         VAR, ICC,   NONE,     0, 255),
    row(0x81,   "Amount, Authorised (Binary)",                                B,   TERM,  NONE,     4, 4),
    row(0x82,   "Application Interchange Profile",                            B,   ICC,   T77_80,   2, 2),
    row(0x83,   "Command Template",                                           B,   TERM,  NONE,     0, 255),
    row(0x84,   "Dedicated File (DF) Name",                                   B,   ICC,   T6F,      5, 16),
    row(0x86,   "Issuer Script Command",                                      B,   ISS,   T71_72,   0, 261),
    row(0x87,   "Application Priority Indicator",                             B,   ICC,   T61_A5,   1, 1),
    row(0x88,   "Short File Identifier (SFI)",                                B,   ICC,   TA5,      1, 1),
    row(0x89,   "Authorisation Code",                                         AN,  ISS,   NONE,     6, 6),
    row(0x8A,   "Authorisation Response Code",                                AN,  ISS_T, NONE,     2, 2),
    row(0x8C,   "Card Risk Management Data Object List 1 (CDOL1)",            B,   ICC,   T70_77,   0, 252),
    row(0x8D,   "Card Risk Management Data Object List 2 (CDOL2)",            B,   ICC,   T70_77,   0, 252),
    row(0x8E,   "Cardholder Verification Method (CVM) List",                  B,   ICC,   T70_77,   10, 252),
    row(0x8F,   "Certification Authority Public Key Index",                   B,   ICC,   T70_77,   1, 1),
    row(0x90,   "Issuer Public Key Certificate",                              B,   ICC,   T70_77,   0, 255),
    row(0x91,   "Issuer Authentication Data",                                 B,   ISS,   NONE,     8, 16),
    row(0x92,   "Issuer Public Key Remainder",                                B,   ICC,   T70_77,   0, 255),
    row(0x93,   "Signed Static Application Data",                             B,   ICC,   T70_77,   0, 255),
    row(0x94,   "Application File Locator (AFL)",                             VAR, ICC,   T77_80,   0, 252),
    row(0x95,   "Terminal Verification Results",                              B,   TERM,  NONE,     5, 5),
    row(0x97,   "Transaction Certificate Data Object List (TDOL)",            B,   ICC,   T70_77,   0, 252),
    row(0x98,   "Transaction Certificate (TC) Hash Value",                    B,   TERM,  NONE,     20, 20),
    row(0x99,   "Transaction Personal Identification Number (PIN) Data",      B,   TERM,  NONE,     0, 255),
    row(0x9A,   "Transaction Date",                                           N,   TERM,  NONE,     3, 3),
    row(0x9B,   "Transaction Status Information",                             B,   TERM,  NONE,     2, 2),
    row(0x9C,   "Transaction Type",                                           N,   TERM,  NONE,     1, 1),
    row(0x9D,   "Directory Definition File (DDF) Name",                       B,   ICC,   T61,      5, 16),
    row(0x9F01, "Acquirer Identifier",                                        N,   TERM,  NONE,     6, 6),
    row(0x9F02, "Amount, Authorised (Numeric)",                               N,   TERM,  NONE,     6, 6),
    row(0x9F03, "Amount, Other (Numeric)",                                    N,   TERM,  NONE,     6, 6),
    row(0x9F04, "Amount, Other (Binary)",                                     B,   TERM,  NONE,     4, 4),
    row(0x9F05, "Application Discretionary Data",                             B,   ICC,   T70_77,   1, 32),
    row(0x9F06, "Application Identifier (AID) - terminal",                    B,   TERM,  NONE,     5, 16),
    row(0x9F07, "Application Usage Control",                                  B,   ICC,   T70_77,   2, 2),
    row(0x9F08, "Application Version Number (card)",                          B,   ICC,   T70_77,   2, 2),
    row(0x9F09, "Application Version Number (terminal)",                      B,   TERM,  NONE,     2, 2),
    row(0x9F0A, "Application Selection Registered Proprietary Data (ASRPD)",  B,   ICC,   TBF0C,    0, 255),
    row(0x9F0B, "Cardholder Name Extended",                                   ANS, ICC,   T70_77,   27, 45),
    row(0x9F0D, "Issuer Action Code - Default",                               B,   ICC,   T70_77,   5, 5),
    row(0x9F0E, "Issuer Action Code - Denial",                                B,   ICC,   T70_77,   5, 5),
    row(0x9F0F, "Issuer Action Code - Online",                                B,   ICC,   T70_77,   5, 5),
    row(0x9F10, "Issuer Application Data",                                    B,   ICC,   T77_80,   0, 32),
    row(0x9F11, "Issuer Code Table Index",                                    N,   ICC,   TA5,      1, 1),
    row(0x9F12, "Application Preferred Name",                                 ANS, ICC,   T61_A5,   1, 16),
    row(0x9F13, "Last Online Application Transaction Counter (ATC) Register", B,   ICC,   NONE,     2, 2),
    row(0x9F14, "Lower Consecutive Offline Limit",                            B,   ICC,   T70_77,   1, 1),
    row(0x9F15, "Merchant Category Code",                                     N,   TERM,  NONE,     2, 2),
    row(0x9F16, "Merchant Identifier",                                        ANS, TERM,  NONE,     15, 15),
    row(0x9F17, "Personal Identification Number (PIN) Try Counter",           B,   ICC,   NONE,     1, 1),
    row(0x9F18, "Issuer Script Identifier",                                   B,   ISS,   T71_72,   4, 4),
    row(0x9F19, "Token Requestor ID",                                         N,   ICC_T, T70_77,   6, 6),
    row(0x9F1A, "Terminal Country Code",                                      N,   TERM,  NONE,     2, 2),
    row(0x9F1B, "Terminal Floor Limit",                                       B,   TERM,  NONE,     4, 4),
    row(0x9F1C, "Terminal Identification",                                    AN,  TERM,  NONE,     8, 8),
    row(0x9F1D, "Terminal Risk Management Data",                              B,   TERM,  NONE,     1, 8),
    row(0x9F1E, "Interface Device (IFD) Serial Number",                       AN,  TERM,  NONE,     8, 8),
    row(0x9F1F, "Track 1 Discretionary Data",                                 ANS, ICC,   T70_77,   0, 255),
    row(0x9F20, "Track 2 Discretionary Data",                                 CN,  ICC,   T70_77,   0, 255),
    row(0x9F21, "Transaction Time",                                           N,   TERM,  NONE,     3, 3),
    row(0x9F22, "Certification Authority Public Key Index",                   B,   TERM,  NONE,     1, 1),
    row(0x9F23, "Upper Consecutive Offline Limit",                            B,   ICC,   T70_77,   1, 1),
    row(0x9F24, "Payment Account Reference (PAR)",                            AN,  ICC,   T70_77,   29, 29),
    row(0x9F25, "Last 4 Digits of PAN",                                       N,   ICC,   T70_77,   2, 2),
    row(0x9F26, "Application Cryptogram",                                     B,   ICC,   T77_80,   8, 8),
    row(0x9F27, "Cryptogram Information Data",                                B,   ICC,   T77_80,   1, 1),
    row(0x9F29, "Extended Selection",                                         B,   ICC,   T61,      0, 11),
    row(0x9F2A, "Kernel Identifier",                                          B,   ICC,   T61,      1, 8),
    row(0x9F2D, "ICC PIN Encipherment Public Key Certificate",                B,   ICC,   T70_77,   0, 255),
    row(0x9F2E, "ICC PIN Encipherment Public Key Exponent",                   B,   ICC,   T70_77,   1, 3),
    row(0x9F2F, "ICC PIN Encipherment Public Key Remainder",                  B,   ICC,   T70_77,   0, 255),
    row(0x9F32, "Issuer Public Key Exponent",                                 B,   ICC,   T70_77,   1, 3),
    row(0x9F33, "Terminal Capabilities",                                      B,   TERM,  NONE,     3, 3),
    row(0x9F34, "Cardholder Verification Method (CVM) Results",               B,   TERM,  NONE,     3, 3),
    row(0x9F35, "Terminal Type",                                              N,   TERM,  NONE,     1, 1),
    row(0x9F36, "Application Transaction Counter (ATC)",                      B,   ICC,   T77_80,   2, 2),
    row(0x9F37, "Unpredictable Number",                                       B,   TERM,  NONE,     4, 4),
    row(0x9F38, "Processing Options Data Object List (PDOL)",                 B,   ICC,   TA5,      0, 252),
    row(0x9F39, "Point-of-Service (POS) Entry Mode",                          N,   TERM,  NONE,     1, 1),
    row(0x9F3A, "Amount, Reference Currency",                                 B,   TERM,  NONE,     4, 4),
    row(0x9F3B, "Application Reference Currency",                             N,   ICC,   T70_77,   2, 8),
    row(0x9F3C, "Transaction Reference Currency Code",                        N,   TERM,  NONE,     2, 2),
    row(0x9F3D, "Transaction Reference Currency Exponent",                    N,   TERM,  NONE,     1, 1),
    row(0x9F40, "Additional Terminal Capabilities",                           B,   TERM,  NONE,     5, 5),
    row(0x9F41, "Transaction Sequence Counter",                               N,   TERM,  NONE,     2, 4),
    row(0x9F42, "Application Currency Code",                                  N,   ICC,   T70_77,   2, 2),
    row(0x9F43, "Application Reference Currency Exponent",                    N,   ICC,   T70_77,   1, 4),
    row(0x9F44, "Application Currency Exponent",                              N,   ICC,   T70_77,   1, 1),
    row(0x9F45, "Data Authentication Code",                                   B,   ICC,   NONE,     2, 2),
    row(0x9F46, "ICC Public Key Certificate",                                 B,   ICC,   T70_77,   0, 255),
    row(0x9F47, "ICC Public Key Exponent",                                    B,   ICC,   T70_77,   1, 3),
    row(0x9F48, "ICC Public Key Remainder",                                   B,   ICC,   T70_77,   0, 255),
    row(0x9F49, "Dynamic Data Authentication Data Object List (DDOL)",        B,   ICC,   T70_77,   0, 252),
    row(0x9F4A, "Static Data Authentication Tag List",                        VAR, ICC,   T70_77,   0, 255),
    row(0x9F4B, "Signed Dynamic Application Data",                            B,   ICC,   T77_80,   0, 255),
    row(0x9F4C, "ICC Dynamic Number",                                         B,   ICC,   NONE,     2, 8),
    row(0x9F4D, "Log Entry",                                                  B,   ICC,   T73_BF0C, 2, 2),
    row(0x9F4E, "Merchant Name and Location",                                 ANS, TERM,  NONE,     0, 255),
    row(0x9F4F, "Log Format",                                                 B,   ICC,   NONE,     0, 255),
    // ---- EMV Contactless Books B, C-2 (Mastercard) and C-3 (Visa): common on real cards ----
    row(0x9F50, "Offline Accumulator Balance",                                N,   ICC,   NONE,     6, 6),
    row(0x9F51, "Application Currency Code (C-3) / DRDOL (C-2)",              B,   ICC,   T70_77,   0, 255),
    row(0x9F53, "Transaction Category Code",                                  AN,  TERM,  NONE,     1, 1),
    row(0x9F5A, "Application Program Identifier (Program ID)",                B,   ICC,   TBF0C_61, 1, 16),
    row(0x9F5B, "Issuer Script Results",                                      B,   TERM,  NONE,     0, 255),
    row(0x9F5D, "Available Offline Spending Amount (C-3) / Application Capabilities Information (C-2)", B, ICC, NONE, 3, 6),
    row(0x9F62, "PCVC3(Track1)",                                              B,   ICC,   T70,      6, 6),
    row(0x9F63, "PUNATC(Track1)",                                             B,   ICC,   T70,      6, 6),
    row(0x9F64, "NATC(Track1)",                                               B,   ICC,   T70,      1, 1),
    row(0x9F65, "PCVC3(Track2)",                                              B,   ICC,   T70,      2, 2),
    row(0x9F66, "Terminal Transaction Qualifiers (TTQ) / PUNATC(Track2) (C-2)", B, ICC_T, T70,      2, 4),
    row(0x9F67, "NATC(Track2) (C-2) / MSD Offset (C-3)",                      B,   ICC,   T70,      1, 1),
    row(0x9F69, "Card Authentication Related Data (C-3) / UDOL (C-2)",        B,   ICC,   T70_77,   0, 255),
    row(0x9F6A, "Unpredictable Number (Numeric)",                             N,   KER,   NONE,     4, 4),
    row(0x9F6B, "Track 2 Data",                                               B,   ICC,   T70,      0, 19),
    row(0x9F6C, "Card Transaction Qualifiers (C-3) / Mag-stripe Application Version Number (Card) (C-2)", B, ICC, T70_77, 2, 2),
    row(0x9F6D, "Mag-stripe Application Version Number (Reader)",             B,   TERM,  NONE,     2, 2),
    row(0x9F6E, "Form Factor Indicator (C-3) / Third Party Data (C-2)",       B,   ICC,   T70_77,   4, 32),
    row(0x9F7C, "Customer Exclusive Data (C-3) / Merchant Custom Data (C-2)", B,   ICC_T, T70_77,   0, 32),
    // ---- EMV 4.4 Book 3 Annex A, continued ----
    row(0xA5,   "File Control Information (FCI) Proprietary Template",        VAR, ICC,   T6F,      0, 252),
    row(0xBF0C, "File Control Information (FCI) Issuer Discretionary Data",   VAR, ICC,   TA5,      0, 222),
    // ---- EMV Contactless Book C-2: kernel and reader data ----
    row(0xDF8101, "DS Summary 2",                                             B,   KER,   NONE,     8, 16),
    row(0xDF8102, "DS Summary 3",                                             B,   KER,   NONE,     8, 16),
    row(0xDF8104, "Balance Read Before Gen AC",                               N,   KER,   NONE,     6, 6),
    row(0xDF8105, "Balance Read After Gen AC",                                N,   KER,   NONE,     6, 6),
    row(0xDF8106, "Data Needed",                                              B,   KER,   NONE,     0, 255),
    row(0xDF8107, "CDOL1 Related Data",                                       B,   KER,   NONE,     0, 255),
    row(0xDF8108, "DS AC Type",                                               B,   TERM,  NONE,     1, 1),
    row(0xDF8109, "DS Input (Term)",                                          B,   TERM,  NONE,     8, 8),
    row(0xDF810A, "DS ODS Info For Reader",                                   B,   TERM,  NONE,     1, 1),
    row(0xDF810B, "DS Summary Status",                                        B,   KER,   NONE,     1, 1),
    row(0xDF810C, "Kernel ID",                                                B,   TERM,  NONE,     1, 1),
    row(0xDF810D, "DSVN Term",                                                B,   KER,   NONE,     0, 255),
    row(0xDF810E, "Post-Gen AC Put Data Status",                              B,   KER,   NONE,     1, 1),
    row(0xDF810F, "Pre-Gen AC Put Data Status",                               B,   KER,   NONE,     1, 1),
    row(0xDF8110, "Proceed To First Write Flag",                              B,   TERM,  NONE,     1, 1),
    row(0xDF8111, "PDOL Related Data",                                        B,   KER,   NONE,     0, 255),
    row(0xDF8112, "Tags To Read",                                             B,   TERM,  NONE,     0, 255),
    row(0xDF8113, "DRDOL Related Data",                                       B,   KER,   NONE,     0, 255),
    row(0xDF8114, "Reference Control Parameter",                              B,   KER,   NONE,     1, 1),
    row(0xDF8115, "Error Indication",                                         B,   KER,   NONE,     6, 6),
    row(0xDF8116, "User Interface Request Data",                              B,   KER,   NONE,     22, 22),
    row(0xDF8117, "Card Data Input Capability",                               B,   TERM,  NONE,     1, 1),
    row(0xDF8118, "CVM Capability - CVM Required",                            B,   TERM,  NONE,     1, 1),
    row(0xDF8119, "CVM Capability - No CVM Required",                         B,   TERM,  NONE,     1, 1),
    row(0xDF811A, "Default UDOL",                                             B,   TERM,  NONE,     0, 255),
    row(0xDF811B, "Kernel Configuration",                                     B,   TERM,  NONE,     1, 1),
    row(0xDF811C, "Max Lifetime of Torn Transaction Log Record",              B,   TERM,  NONE,     2, 2),
    row(0xDF811D, "Max Number of Torn Transaction Log Records",               B,   TERM,  NONE,     1, 1),
    row(0xDF811E, "Mag-stripe CVM Capability - CVM Required",                 B,   TERM,  NONE,     1, 1),
    row(0xDF811F, "Security Capability",                                      B,   TERM,  NONE,     1, 1),
    row(0xDF8120, "Terminal Action Code - Default",                           B,   TERM,  NONE,     5, 5),
    row(0xDF8121, "Terminal Action Code - Denial",                            B,   TERM,  NONE,     5, 5),
    row(0xDF8122, "Terminal Action Code - Online",                            B,   TERM,  NONE,     5, 5),
    row(0xDF8123, "Reader Contactless Floor Limit",                           N,   TERM,  NONE,     6, 6),
    row(0xDF8124, "Reader Contactless Transaction Limit (No On-device CVM)",  N,   TERM,  NONE,     6, 6),
    row(0xDF8125, "Reader Contactless Transaction Limit (On-device CVM)",     N,   TERM,  NONE,     6, 6),
    row(0xDF8126, "Reader CVM Required Limit",                                N,   TERM,  NONE,     6, 6),
    row(0xDF8127, "Time Out Value",                                           B,   TERM,  NONE,     2, 2),
    row(0xDF8128, "IDS Status",                                               B,   KER,   NONE,     1, 1),
    row(0xDF8129, "Outcome Parameter Set",                                    B,   KER,   NONE,     8, 8),
    row(0xDF812A, "DD Card (Track1)",                                         ANS, KER,   NONE,     0, 56),
    row(0xDF812B, "DD Card (Track2)",                                         B,   KER,   NONE,     0, 8),
    row(0xDF812C, "Mag-stripe CVM Capability - No CVM Required",              B,   TERM,  NONE,     1, 1),
    row(0xDF812D, "Message Hold Time",                                        N,   TERM,  NONE,     3, 3),
    row(0xDF8130, "Hold Time Value",                                          B,   TERM,  NONE,     1, 1),
    row(0xDF8131, "Phone Message Table",                                      B,   TERM,  NONE,     0, 255),
];

static TAGS: &[TagInfo] = TABLE;

/// The [`sort_key`] of every row of `TAGS`, computed when the crate is compiled: the
/// binary search of [`lookup`] compares keys, and DOL building and the card's answers
/// look up every tag they meet.
static KEYS: [u32; TABLE.len()] = {
    let mut keys = [0; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        keys[i] = sort_key(TABLE[i].tag);
        i += 1;
    }
    keys
};

/// The key that orders tags as their bytes do: the tag left-aligned in 32 bits, so
/// `A5` (`A5000000`) sorts after `9F4F` (`9F4F0000`) as in the EMV books' tag lists.
pub const fn sort_key(tag: TagNumber) -> u32 {
    // Zero bytes on the left, at most three (a tag has one to four bytes, tag 0 one):
    // the shift is 0 to 24.
    let zero_bytes = tag.leading_zeros() / 8;
    let zero_bytes = if zero_bytes > 3 { 3 } else { zero_bytes };
    tag << (8 * zero_bytes)
}

/// The entry of `tag`, if known.
pub fn lookup(tag: TagNumber) -> Option<&'static TagInfo> {
    KEYS.binary_search(&sort_key(tag))
        .ok()
        .and_then(|i| TAGS.get(i))
}

/// The EMV name of `tag`, if known.
pub fn name(tag: TagNumber) -> Option<&'static str> {
    lookup(tag).map(|t| t.name)
}

/// Every entry, in tag-byte order ([`sort_key`]).
pub fn all() -> &'static [TagInfo] {
    TAGS
}

/// The tags whose value is a Data Object List (tag-length pairs, EMV Book 3 §5.4), shown
/// as lists by the renderer: CDOL1, CDOL2, TDOL, PDOL, DDOL, the Log Format (Book 3
/// Annex D) and the contactless DOLs (DRDOL, UDOL, Default UDOL).
pub const DOL_TAGS: &[TagNumber] = &[0x8C, 0x8D, 0x97, 0x9F38, 0x9F49, 0x9F4F, 0xDF811A];

/// The tags whose value is a bare list of tags (no lengths): the Static Data
/// Authentication Tag List (Book 3 §10.3) and C-2's Tags To Read and Data Needed.
pub const TAG_LIST_TAGS: &[TagNumber] = &[0x9F4A, 0xDF8106, 0xDF8112];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in TAGS.windows(2) {
            if let [a, b] = pair {
                assert!(
                    sort_key(a.tag) < sort_key(b.tag),
                    "{:X} must come before {:X}",
                    a.tag,
                    b.tag
                );
            }
        }
    }

    #[test]
    fn rows_are_consistent() {
        for t in TAGS {
            assert!(t.min_len <= t.max_len, "{:X} lengths", t.tag);
            assert!(!t.name.is_empty(), "{:X} name", t.tag);
            // Templates hold BER-TLV, so their format is var. and their tag constructed.
            if super::super::ber::is_constructed(t.tag) {
                assert_eq!(t.format, Format::Variable, "{:X} is a template", t.tag);
            }
            for parent in t.templates {
                assert!(
                    super::super::ber::is_constructed(*parent) || *parent == 0x80,
                    "{:X} listed inside primitive {:X}",
                    t.tag,
                    parent
                );
            }
        }
    }

    #[test]
    fn lookup_finds_every_row_and_nothing_else() {
        for t in TAGS {
            assert_eq!(lookup(t.tag), Some(t));
        }
        assert_eq!(lookup(0xDF01), None);
        assert_eq!(lookup(0), None);
        assert_eq!(name(0x9F26), Some("Application Cryptogram"));
    }
}
