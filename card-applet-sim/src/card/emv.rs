//! The EMV payment applet's transaction commands: GET PROCESSING OPTIONS, GET DATA and
//! GENERATE AC (first and second), with card risk management, the Card Verification
//! Results, the Issuer Application Data, issuer authentication (ARPC method 1) and the
//! transaction log.
//!
//! Cryptograms come from [`crate::crypto`], the same code the acquirer uses, over what
//! `crypto::ac_input_data` assembles from named values: the EMV Book 2 §8.1.1 minimum
//! set (9F02 9F03 9F1A 95 5F2A 9A 9C 9F37, AIP, ATC) then the CVR (CVN 10) or the whole
//! IAD (CVN 18). The first GENERATE AC takes the terminal values from its CDOL1 data; the
//! second takes them from its CDOL2 data where CDOL2 holds the tag (95 and 9F37 always),
//! else from the first command's CDOL1 data. Terminal data outside the minimum set (the
//! cb profile's 9F7C merchant data) is therefore not under the cryptogram: bind it with
//! PERFORM SECURITY OPERATION instead.

use crate::crypto::{AcInput, ac_input_data, application_cryptogram, arpc_method1};
use crate::profile::{ApplicationProfile, ResponseFormat};

use super::apdu::{Apdu, Sw};
use super::tlv::{self, DolEntry, Tag, encode};
use super::{CryptogramType, FirstAc, Phase, PinOutcome, SimCard};

/// The Issuer Application Data length byte and the CVR length byte of the Visa IAD
/// layout (VIS 1.5 Appendix A "Issuer Application Data", format 0/1/3): `06 DKI CVN 03
/// CVR(3)`.
const IAD_LENGTH: u8 = 0x06;
const CVR_LENGTH: u8 = 0x03;

/// Authorisation Response Codes (8A, an 2) meaning "the issuer approved" (ISO 8583 codes
/// 00, 08, 10, 11).
const APPROVED_ARCS: [[u8; 2]; 4] = [*b"00", *b"08", *b"10", *b"11"];
/// The terminal's codes for "unable to go online" (EMV Book 4 §A6: Y3 approve, Z3
/// decline): issuer authentication was not possible.
const UNABLE_ONLINE_ARCS: [[u8; 2]; 2] = [*b"Y3", *b"Z3"];

/// Everything that goes into the Card Verification Results (Visa CVR, VIS 1.5 Appendix
/// A: byte 2 AC types and cardholder verification, byte 3 history indicators).
#[derive(Debug, Clone, Copy, Default)]
struct CvrInputs {
    first: Option<CryptogramType>,
    second: Option<CryptogramType>,
    pin: PinOutcome,
    issuer_auth_failed_now: bool,
    unable_online: bool,
    last_online_incomplete: bool,
    pin_try_limit_exceeded: bool,
    velocity_exceeded: bool,
    new_card: bool,
    issuer_auth_failed_last: bool,
    issuer_auth_not_performed: bool,
}

impl CvrInputs {
    /// CVR bytes 2 to 4 (byte 1 is the length, `03`).
    fn encode(&self) -> [u8; 3] {
        let mut b2 = 0u8;
        // b8-b7: AC type of the second GENERATE AC: 00 AAC, 01 TC, 10 not requested.
        b2 |= match self.second {
            None => 0b10 << 6,
            Some(CryptogramType::Tc) => 0b01 << 6,
            Some(_) => 0,
        };
        // b6-b5: AC type of the first GENERATE AC: 00 AAC, 01 TC, 10 ARQC.
        b2 |= match self.first {
            Some(CryptogramType::Tc) => 0b01 << 4,
            Some(CryptogramType::Arqc) => 0b10 << 4,
            _ => 0,
        };
        b2 |= u8::from(self.issuer_auth_failed_now) << 3;
        b2 |= u8::from(self.pin.tried) << 2;
        b2 |= u8::from(self.pin.failed) << 1;
        b2 |= u8::from(self.unable_online);
        let mut b3 = 0u8;
        b3 |= u8::from(self.last_online_incomplete) << 7;
        b3 |= u8::from(self.pin_try_limit_exceeded) << 6;
        b3 |= u8::from(self.velocity_exceeded) << 5;
        b3 |= u8::from(self.new_card) << 4;
        b3 |= u8::from(self.issuer_auth_failed_last) << 3;
        b3 |= u8::from(self.issuer_auth_not_performed) << 2;
        [b2, b3, 0]
    }
}

/// The terminal data the cryptogram and the risk checks read, by tag.
struct TerminalData<'a> {
    /// The DOL data of this command and its DOL.
    current: (&'a [DolEntry], &'a [u8]),
    /// For the second GENERATE AC: the first one's CDOL1 data, for tags CDOL2 lacks.
    earlier: Option<(&'a [DolEntry], &'a [u8])>,
}

impl TerminalData<'_> {
    fn get(&self, tag: Tag) -> Option<&[u8]> {
        tlv::dol_value(self.current.0, self.current.1, tag).or_else(|| {
            self.earlier
                .and_then(|(dol, data)| tlv::dol_value(dol, data, tag))
        })
    }

    /// A fixed-size field; the profile check guarantees CDOL1 holds each one with this
    /// length, so a miss is an internal fault (`6F00`), not a terminal error.
    fn field<const N: usize>(&self, tag: Tag) -> Result<[u8; N], Sw> {
        self.get(tag)
            .and_then(|v| <[u8; N]>::try_from(v).ok())
            .ok_or(Sw::NO_DIAGNOSIS)
    }
}

/// A BCD amount (n12, 9F02) as a number; `None` if a nibble is not a digit.
fn bcd_amount(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, b| {
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return None;
        }
        acc.checked_mul(100)?
            .checked_add(u64::from(hi) * 10 + u64::from(lo))
    })
}

impl SimCard {
    /// GET PROCESSING OPTIONS (EMV Book 3 §6.5.8): `80 A8 00 00 Lc 83 L <PDOL data> 00`.
    /// Answers the AIP and AFL, format 1 or 2 per profile, and starts the transaction.
    pub(super) fn get_processing_options(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        if apdu.p1p2() != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        let index = self.selected_application()?;
        if self.session.phase != Phase::Selected {
            return Err(Sw::CONDITIONS);
        }
        let app = self
            .profile
            .applications()
            .get(index)
            .ok_or(Sw::NO_DIAGNOSIS)?;
        // The data field is the Command Template 83 holding the PDOL data, exactly as
        // long as the PDOL asks (EMV Book 3 §5.4, §6.5.8.3).
        let first = *apdu.data.first().ok_or(Sw::WRONG_LENGTH)?;
        if first != 0x83 {
            return Err(Sw::WRONG_DATA);
        }
        let (len, start) = tlv::read_length(apdu.data, 1).map_err(|_| Sw::WRONG_LENGTH)?;
        if len != tlv::dol_data_len(&app.pdol_entries)
            || start.checked_add(len) != Some(apdu.data.len())
        {
            return Err(Sw::WRONG_LENGTH);
        }
        let response = match app.gpo_format() {
            ResponseFormat::Format1 => {
                let mut value = app.aip().to_vec();
                value.extend_from_slice(app.afl());
                encode(0x80, &value)
            }
            ResponseFormat::Format2 => {
                let mut out = Vec::with_capacity(app.afl().len().saturating_add(16));
                let template = tlv::open(&mut out, 0x77);
                tlv::push(&mut out, 0x82, &app.aip());
                tlv::push(&mut out, 0x94, app.afl());
                tlv::close(&mut out, template);
                out
            }
        };
        self.session.phase = Phase::Initiated;
        self.session.pin = PinOutcome::default();
        Ok(response)
    }

    /// GET DATA (EMV Book 3 §6.5.7): `80 CA P1 P2 00`, P1-P2 the tag. Answers the ATC
    /// (9F36), the PIN Try Counter (9F17), the Last Online ATC Register (9F13), the Log
    /// Format (9F4F) and the card's ECDSA public key under the profile's tag; `6A88`
    /// for anything else.
    pub(super) fn get_data(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        if !apdu.data.is_empty() {
            return Err(Sw::WRONG_LENGTH);
        }
        let index = self.selected_application()?;
        let app = self
            .profile
            .applications()
            .get(index)
            .ok_or(Sw::NO_DIAGNOSIS)?;
        let counters = self.state.applications.get(index).ok_or(Sw::NO_DIAGNOSIS)?;
        let tag = Tag::from(apdu.p1p2());
        let value = match tag {
            0x9F36 => counters.atc.to_be_bytes().to_vec(),
            0x9F17 => vec![self.state.pin_tries_left],
            0x9F13 => counters.last_online_atc.to_be_bytes().to_vec(),
            0x9F4F => app.log().format.clone(),
            t if t == self.profile.public_key_tag() => self.profile.public_key_sec1(),
            _ => return Err(Sw::DATA_NOT_FOUND),
        };
        Ok(encode(tag, &value))
    }

    /// GENERATE APPLICATION CRYPTOGRAM (EMV Book 3 §6.5.5): `80 AE P1 00 Lc <CDOL data>
    /// 00`. P1 b8-b7 is the cryptogram the terminal asks for (00 AAC, 01 TC, 10 ARQC);
    /// CDA (b5) is not supported (the AIP does not announce it) and RFU bits must be 0.
    pub(super) fn generate_ac(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        if apdu.p2 != 0 || apdu.p1 & 0x3F != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        let requested = match apdu.p1 >> 6 {
            0b00 => CryptogramType::Aac,
            0b01 => CryptogramType::Tc,
            0b10 => CryptogramType::Arqc,
            _ => return Err(Sw::WRONG_P1P2),
        };
        let index = self.selected_application()?;
        match std::mem::take(&mut self.session.phase) {
            Phase::Initiated => {
                let result = self.first_ac(index, requested, apdu.data);
                if result.is_err() && self.session.phase == Phase::Selected {
                    // A refused command leaves the transaction where it was.
                    self.session.phase = Phase::Initiated;
                }
                result
            }
            Phase::AwaitingSecondAc(first) => {
                if requested == CryptogramType::Arqc {
                    // The second GENERATE AC asks for TC or AAC (EMV Book 3 §9.3).
                    self.session.phase = Phase::AwaitingSecondAc(first);
                    return Err(Sw::WRONG_P1P2);
                }
                if apdu.data.len() != self.cdol_len(index, false) {
                    self.session.phase = Phase::AwaitingSecondAc(first);
                    return Err(Sw::WRONG_LENGTH);
                }
                self.second_ac(index, requested, apdu.data, &first)
            }
            other => {
                self.session.phase = other;
                Err(Sw::CONDITIONS)
            }
        }
    }

    fn cdol_len(&self, index: usize, first: bool) -> usize {
        self.profile.applications().get(index).map_or(0, |app| {
            tlv::dol_data_len(if first {
                &app.cdol1_entries
            } else {
                &app.cdol2_entries
            })
        })
    }

    /// The card's own decision (card risk management): go online (ARQC) when any check
    /// asks for it, else approve offline (TC). Returns the decision and the checks that
    /// went into the CVR.
    fn card_risk(
        &self,
        index: usize,
        app: &ApplicationProfile,
        data: &TerminalData<'_>,
        new_atc: u16,
    ) -> (CryptogramType, bool) {
        let risk = app.risk();
        let counters = self.state.applications.get(index);
        let amount_over_floor = data
            .get(0x9F02)
            .and_then(bcd_amount)
            .is_none_or(|amount| amount > risk.floor_limit);
        let foreign_currency = risk
            .currency
            .is_some_and(|currency| data.get(0x5F2A) != Some(currency.as_slice()));
        let offline_run = counters.map_or(0, |c| {
            new_atc.saturating_sub(1).saturating_sub(c.last_online_atc)
        });
        let velocity_exceeded = risk
            .max_consecutive_offline
            .is_some_and(|max| offline_run >= max);
        let history_says_online =
            counters.is_some_and(|c| c.issuer_auth_failed || c.online_incomplete);
        let go_online = risk.always_online
            || amount_over_floor
            || foreign_currency
            || velocity_exceeded
            || history_says_online
            || self.state.pin_tries_left == 0
            || self.session.pin.failed;
        let decision = if go_online {
            CryptogramType::Arqc
        } else {
            CryptogramType::Tc
        };
        (decision, velocity_exceeded)
    }

    fn first_ac(
        &mut self,
        index: usize,
        requested: CryptogramType,
        cdol1_data: &[u8],
    ) -> Result<Vec<u8>, Sw> {
        if cdol1_data.len() != self.cdol_len(index, true) {
            return Err(Sw::WRONG_LENGTH);
        }
        let profile = std::sync::Arc::clone(&self.profile);
        let app = profile.applications().get(index).ok_or(Sw::NO_DIAGNOSIS)?;
        let counters = self.counters(index)?;
        // The ATC counts every first GENERATE AC and never wraps: a card whose counter is
        // exhausted cannot transact any more.
        let atc = counters.atc.checked_add(1).ok_or(Sw::CONDITIONS)?;
        let data = TerminalData {
            current: (&app.cdol1_entries, cdol1_data),
            earlier: None,
        };
        let (card_decision, velocity_exceeded) = self.card_risk(index, app, &data, atc);
        let result = requested.min(card_decision);
        let cvr = CvrInputs {
            first: Some(result),
            second: None,
            pin: self.session.pin,
            last_online_incomplete: counters.online_incomplete,
            pin_try_limit_exceeded: self.state.pin_tries_left == 0,
            velocity_exceeded,
            new_card: counters.last_online_atc == 0,
            issuer_auth_failed_last: counters.issuer_auth_failed,
            ..CvrInputs::default()
        }
        .encode();
        let (cryptogram, iad) = self.cryptogram(index, app, &data, cdol1_data, atc, cvr)?;

        let entry = log_entry(app, &data, atc, result);
        if let Some(state) = self.state.applications.get_mut(index) {
            state.atc = atc;
            state.online_incomplete = result == CryptogramType::Arqc;
            push_log(&mut state.log, entry, app.log().max_records);
        }
        if let Err(sw) = self.persist() {
            self.session.phase = Phase::Completed;
            return Err(sw);
        }
        self.session.phase = if result == CryptogramType::Arqc {
            Phase::AwaitingSecondAc(Box::new(FirstAc {
                cdol1_data: cdol1_data.to_vec(),
                arqc: cryptogram,
                card_decision,
                cvr,
            }))
        } else {
            Phase::Completed
        };
        Ok(ac_response(
            app.gen_ac_format(),
            result,
            atc,
            cryptogram,
            &iad,
        ))
    }

    fn second_ac(
        &mut self,
        index: usize,
        requested: CryptogramType,
        cdol2_data: &[u8],
        first: &FirstAc,
    ) -> Result<Vec<u8>, Sw> {
        let profile = std::sync::Arc::clone(&self.profile);
        let app = profile.applications().get(index).ok_or(Sw::NO_DIAGNOSIS)?;
        let counters = self.counters(index)?;
        let atc = counters.atc;
        let data = TerminalData {
            current: (&app.cdol2_entries, cdol2_data),
            earlier: Some((&app.cdol1_entries, &first.cdol1_data)),
        };
        let arc: [u8; 2] = tlv::dol_value(&app.cdol2_entries, cdol2_data, 0x8A)
            .and_then(|v| v.try_into().ok())
            .ok_or(Sw::NO_DIAGNOSIS)?;
        let issuer_auth: [u8; 10] = tlv::dol_value(&app.cdol2_entries, cdol2_data, 0x91)
            .and_then(|v| v.try_into().ok())
            .ok_or(Sw::NO_DIAGNOSIS)?;
        let version = app.cryptogram_version().ok_or(Sw::NO_DIAGNOSIS)?;
        let key = self.icc_keys.get(index).ok_or(Sw::NO_DIAGNOSIS)?;

        let mut cvr_inputs = CvrInputs {
            first: Some(CryptogramType::Arqc),
            pin: self.session.pin,
            pin_try_limit_exceeded: self.state.pin_tries_left == 0,
            issuer_auth_failed_last: counters.issuer_auth_failed,
            ..CvrInputs::default()
        };
        // Keep the history bits the ARQC reported (byte 3 of the first CVR).
        let first_history = first.cvr[1];
        cvr_inputs.last_online_incomplete = first_history & 0x80 != 0;
        cvr_inputs.velocity_exceeded = first_history & 0x20 != 0;
        cvr_inputs.new_card = first_history & 0x10 != 0;

        let mut online_success = false;
        let mut issuer_auth_failed = counters.issuer_auth_failed;
        let result = if issuer_auth.iter().any(|b| *b != 0) {
            // Issuer authentication, ARPC method 1 (EMV Book 2 §8.2.1): the Issuer
            // Authentication Data 91 is ARPC (8) || ARC (2), the ARPC computed over the
            // ARQC and that ARC.
            let (arpc, arpc_arc) = issuer_auth.split_at(8);
            let arpc_arc: [u8; 2] = arpc_arc.try_into().map_err(|_| Sw::NO_DIAGNOSIS)?;
            let expected = arpc_method1(version, key, atc, &first.arqc, &arpc_arc);
            if constant_time_eq(&expected, arpc) {
                online_success = true;
                issuer_auth_failed = false;
                if requested == CryptogramType::Tc && APPROVED_ARCS.contains(&arc) {
                    CryptogramType::Tc
                } else {
                    CryptogramType::Aac
                }
            } else {
                cvr_inputs.issuer_auth_failed_now = true;
                issuer_auth_failed = true;
                CryptogramType::Aac
            }
        } else if UNABLE_ONLINE_ARCS.contains(&arc) {
            // The terminal could not reach the issuer: approve offline only if the card's
            // own risk management would have approved the first time.
            cvr_inputs.unable_online = true;
            if requested == CryptogramType::Tc && first.card_decision == CryptogramType::Tc {
                CryptogramType::Tc
            } else {
                CryptogramType::Aac
            }
        } else {
            // Online, but no issuer authentication data: this card requires it (its AIP
            // announces issuer authentication), so it declines.
            cvr_inputs.issuer_auth_not_performed = true;
            CryptogramType::Aac
        };
        cvr_inputs.second = Some(result);
        let cvr = cvr_inputs.encode();
        let (cryptogram, iad) = self.cryptogram(index, app, &data, cdol2_data, atc, cvr)?;

        let entry = log_entry(app, &data, atc, result);
        if let Some(state) = self.state.applications.get_mut(index) {
            state.online_incomplete = false;
            state.issuer_auth_failed = issuer_auth_failed;
            if online_success {
                state.last_online_atc = atc;
            }
            push_log(&mut state.log, entry, app.log().max_records);
        }
        self.session.phase = Phase::Completed;
        self.persist()?;
        Ok(ac_response(
            app.gen_ac_format(),
            result,
            atc,
            cryptogram,
            &iad,
        ))
    }

    /// Builds the IAD (Visa layout: `06 DKI CVN 03 CVR`) and computes the cryptogram over
    /// what the profile's cryptogram version defines.
    fn cryptogram(
        &self,
        index: usize,
        app: &ApplicationProfile,
        data: &TerminalData<'_>,
        dol_data: &[u8],
        atc: u16,
        cvr: [u8; 3],
    ) -> Result<([u8; 8], Vec<u8>), Sw> {
        let version = app.cryptogram_version().ok_or(Sw::NO_DIAGNOSIS)?;
        let key = self.icc_keys.get(index).ok_or(Sw::NO_DIAGNOSIS)?;
        let [c1, c2, c3] = cvr;
        let iad = vec![
            IAD_LENGTH,
            app.derivation_key_index(),
            app.cvn(),
            CVR_LENGTH,
            c1,
            c2,
            c3,
        ];
        let input = AcInput {
            cdol1_data: dol_data,
            amount_authorised: data.field(0x9F02)?,
            amount_other: data.field(0x9F03)?,
            terminal_country: data.field(0x9F1A)?,
            tvr: data.field(0x95)?,
            currency: data.field(0x5F2A)?,
            date: data.field(0x9A)?,
            transaction_type: data.field::<1>(0x9C)?[0],
            unpredictable_number: data.field(0x9F37)?,
            aip: app.aip(),
            atc,
            iad: &iad,
        };
        let input_data = ac_input_data(version, &input);
        Ok((application_cryptogram(version, key, atc, &input_data), iad))
    }
}

/// The counters a GENERATE AC reads, copied out of the state so the state can be
/// updated meanwhile (without cloning the transaction log).
#[derive(Debug, Clone, Copy)]
struct Counters {
    atc: u16,
    last_online_atc: u16,
    issuer_auth_failed: bool,
    online_incomplete: bool,
}

impl SimCard {
    fn counters(&self, index: usize) -> Result<Counters, Sw> {
        let state = self.state.applications.get(index).ok_or(Sw::NO_DIAGNOSIS)?;
        Ok(Counters {
            atc: state.atc,
            last_online_atc: state.last_online_atc,
            issuer_auth_failed: state.issuer_auth_failed,
            online_incomplete: state.online_incomplete,
        })
    }
}

/// The GENERATE AC response (EMV Book 3 §6.5.5.4): format 1 `80` CID || ATC || AC ||
/// IAD, or format 2 `77` with 9F27, 9F36, 9F26, 9F10.
fn ac_response(
    format: ResponseFormat,
    kind: CryptogramType,
    atc: u16,
    cryptogram: [u8; 8],
    iad: &[u8],
) -> Vec<u8> {
    match format {
        ResponseFormat::Format1 => {
            let mut out = Vec::with_capacity(iad.len().saturating_add(16));
            let template = tlv::open(&mut out, 0x80);
            out.push(kind.cid());
            out.extend_from_slice(&atc.to_be_bytes());
            out.extend_from_slice(&cryptogram);
            out.extend_from_slice(iad);
            tlv::close(&mut out, template);
            out
        }
        ResponseFormat::Format2 => {
            let mut out = Vec::with_capacity(iad.len().saturating_add(32));
            let template = tlv::open(&mut out, 0x77);
            tlv::push(&mut out, 0x9F27, &[kind.cid()]);
            tlv::push(&mut out, 0x9F36, &atc.to_be_bytes());
            tlv::push(&mut out, 0x9F26, &cryptogram);
            tlv::push(&mut out, 0x9F10, iad);
            tlv::close(&mut out, template);
            out
        }
    }
}

/// One log record laid out by the Log Format (EMV Book 3 Annex D): each value the
/// terminal sent or the card knows (9F36 ATC, 9F27 CID, 82 AIP) at its exact length;
/// a value the card does not have, or of another length, is logged as zeros.
fn log_entry(
    app: &ApplicationProfile,
    data: &TerminalData<'_>,
    atc: u16,
    kind: CryptogramType,
) -> Vec<u8> {
    let entries = &app.log().format_entries;
    let mut out = Vec::with_capacity(tlv::dol_data_len(entries));
    // The card's own values are copied from the stack, not each into a new vector.
    let atc = atc.to_be_bytes();
    let cid = [kind.cid()];
    let aip = app.aip();
    for entry in entries {
        let value: Option<&[u8]> = match entry.tag {
            0x9F36 => Some(&atc),
            0x9F27 => Some(&cid),
            0x82 => Some(&aip),
            _ => data.get(entry.tag),
        };
        match value {
            Some(v) if v.len() == entry.len => out.extend_from_slice(v),
            _ => out.resize(out.len().saturating_add(entry.len), 0),
        }
    }
    out
}

/// Adds an entry in front (record 1 is the most recent) and drops the oldest beyond the
/// cap.
fn push_log(log: &mut Vec<Vec<u8>>, entry: Vec<u8>, max: u8) {
    log.insert(0, entry);
    log.truncate(usize::from(max));
}

/// Compares without an early exit, so timing does not tell how many bytes matched.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvr_bits() {
        let arqc = CvrInputs {
            first: Some(CryptogramType::Arqc),
            ..CvrInputs::default()
        };
        // 03 A0 00 00 is the CVR of a plain ARQC on real Visa cards.
        assert_eq!(arqc.encode(), [0xA0, 0x00, 0x00]);
        let tc_with_pin = CvrInputs {
            first: Some(CryptogramType::Tc),
            pin: PinOutcome {
                tried: true,
                failed: false,
            },
            ..CvrInputs::default()
        };
        assert_eq!(tc_with_pin.encode(), [0x94, 0x00, 0x00]);
        let failed_auth = CvrInputs {
            first: Some(CryptogramType::Arqc),
            second: Some(CryptogramType::Aac),
            issuer_auth_failed_now: true,
            pin_try_limit_exceeded: true,
            ..CvrInputs::default()
        };
        assert_eq!(failed_auth.encode(), [0x28, 0x40, 0x00]);
    }

    #[test]
    fn amounts() {
        assert_eq!(bcd_amount(&[0, 0, 0, 0, 0x30, 0x00]), Some(3000));
        assert_eq!(bcd_amount(&[0, 0, 0, 0, 0x3A, 0x00]), None);
    }

    #[test]
    fn log_is_capped_most_recent_first() {
        let mut log = Vec::new();
        for i in 0..5u8 {
            push_log(&mut log, vec![i], 3);
        }
        assert_eq!(log, vec![vec![4], vec![3], vec![2]]);
    }
}
