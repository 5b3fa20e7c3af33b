//! The card's file system as a payment terminal sees it: SELECT by DF name (first and
//! next occurrence, partial AID match), the FCIs of the PSE, the PPSE and each payment
//! application, and READ RECORD over the PSE directory, the application records and the
//! transaction log.

use super::apdu::{Apdu, Sw};
use super::tlv;
use super::{Phase, Selected, SimCard};

/// The Payment System Environment's DF name (EMV Book 1 §12.2.2).
pub(crate) const PSE_NAME: &[u8] = b"1PAY.SYS.DDF01";
/// The Proximity Payment System Environment's DF name (EMV Book B §3.3).
pub(crate) const PPSE_NAME: &[u8] = b"2PAY.SYS.DDF01";
/// The SFI of the PSE's directory records (EMV Book 1 §12.2.3: given by tag 88).
const PSE_DIRECTORY_SFI: u8 = 1;

impl SimCard {
    /// The selectable DFs in file-system order: PSE, PPSE, then the applications (walked
    /// in place: a SELECT makes no list of them).
    fn dedicated_files(&self) -> impl Iterator<Item = (Selected, &[u8])> + Clone {
        let directories = self.profile.directories();
        let pse = directories.pse.then_some((Selected::Pse, PSE_NAME));
        let ppse = directories.ppse.then_some((Selected::Ppse, PPSE_NAME));
        let applications = self
            .profile
            .applications()
            .iter()
            .enumerate()
            .map(|(i, app)| (Selected::Application(i), app.aid()));
        pse.into_iter().chain(ppse).chain(applications)
    }

    /// SELECT (ISO 7816-4 §11.1.1, EMV Book 1 §11.3).
    ///
    /// - P1 `04`: by DF name, which may be a prefix of the AID (partial selection, EMV
    ///   Book 1 §12.3.3); P1 `00`: by file identifier, only the MF (`3F00` or empty).
    /// - P2 b2-b1: `00` first occurrence, `10` next occurrence (after the current DF);
    ///   last/previous (`01`/`11`) are refused. P2 b4-b3: `00` return the FCI, `11` no
    ///   response data; FCP/FMD are refused.
    pub(super) fn select(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        let occurrence_next = match apdu.p2 & 0x03 {
            0x00 => false,
            0x02 => true,
            _ => return Err(Sw::WRONG_P1P2),
        };
        let return_fci = match apdu.p2 & 0xFC {
            0x00 => true,
            0x0C => false,
            _ => return Err(Sw::WRONG_P1P2),
        };
        match apdu.p1 {
            0x00 => {
                if occurrence_next || !(apdu.data.is_empty() || apdu.data == [0x3F, 0x00]) {
                    return if occurrence_next {
                        Err(Sw::WRONG_P1P2)
                    } else {
                        Err(Sw::FILE_NOT_FOUND)
                    };
                }
                self.begin_selection(Selected::MasterFile);
                Ok(Vec::new())
            }
            0x04 => {
                // ISO 7816-4 §11.1.1: a DF name is 1 to 16 bytes.
                if apdu.data.is_empty() || apdu.data.len() > 16 {
                    return Err(Sw::WRONG_LENGTH);
                }
                let files = self.dedicated_files();
                let current = files.clone().position(|(s, _)| s == self.session.selected);
                let found = files
                    .enumerate()
                    .filter(|(i, _)| !occurrence_next || current.is_none_or(|c| *i > c))
                    .find(|(_, (_, name))| name.starts_with(apdu.data))
                    .map(|(_, (s, _))| s)
                    .ok_or(Sw::FILE_NOT_FOUND)?;
                self.begin_selection(found);
                if return_fci {
                    Ok(self.fci(found))
                } else {
                    Ok(Vec::new())
                }
            }
            _ => Err(Sw::WRONG_P1P2),
        }
    }

    /// A successful SELECT ends the previous application's session: its transaction and
    /// its PIN verification (EMV Book 3 §6.5.12: the security status is per selection).
    fn begin_selection(&mut self, selected: Selected) {
        self.session.selected = selected;
        self.session.phase = Phase::Selected;
        self.session.pin = Default::default();
        self.session.pin_verified = false;
    }

    /// The File Control Information template `6F` of a DF (EMV Book 1 §11.3.4, tables 43
    /// to 45).
    fn fci(&self, selected: Selected) -> Vec<u8> {
        let name: &[u8] = match selected {
            Selected::Pse => PSE_NAME,
            Selected::Ppse => PPSE_NAME,
            Selected::Application(i) => match self.profile.applications().get(i) {
                Some(app) => app.aid(),
                None => return Vec::new(),
            },
            Selected::Nothing | Selected::MasterFile => return Vec::new(),
        };
        // One buffer for the whole template: each constructed object's length is put in
        // once its value is written.
        let mut out = Vec::with_capacity(128);
        let fci = tlv::open(&mut out, 0x6F);
        tlv::push(&mut out, 0x84, name);
        let proprietary = tlv::open(&mut out, 0xA5);
        let language = self.profile.language().as_bytes();
        match selected {
            Selected::Pse => {
                tlv::push(&mut out, 0x88, &[PSE_DIRECTORY_SFI]);
                tlv::push(&mut out, 0x5F2D, language);
            }
            Selected::Ppse => {
                let directory = tlv::open(&mut out, 0xBF0C);
                for app in self.profile.applications() {
                    push_directory_entry(&mut out, app);
                }
                tlv::close(&mut out, directory);
            }
            Selected::Application(i) => {
                if let Some(app) = self.profile.applications().get(i) {
                    tlv::push(&mut out, 0x50, app.label().as_bytes());
                    tlv::push(&mut out, 0x87, &[app.priority()]);
                    if !app.pdol().is_empty() {
                        tlv::push(&mut out, 0x9F38, app.pdol());
                    }
                    tlv::push(&mut out, 0x5F2D, language);
                    if let Some(name) = app.preferred_name() {
                        // 9F12 comes with the Issuer Code Table Index that encodes it
                        // (9F11, EMV Book 1 §12.2.4): 01 = ISO 8859-1.
                        tlv::push(&mut out, 0x9F11, &[0x01]);
                        tlv::push(&mut out, 0x9F12, name.as_bytes());
                    }
                    // Issuer discretionary data: the log entry (9F4D = log SFI, record
                    // count, EMV Book 3 Annex D), then the profile's own data objects.
                    let log = app.log();
                    let discretionary = tlv::open(&mut out, 0xBF0C);
                    tlv::push(&mut out, 0x9F4D, &[log.sfi, log.max_records]);
                    out.extend_from_slice(app.fci_discretionary());
                    tlv::close(&mut out, discretionary);
                }
            }
            Selected::Nothing | Selected::MasterFile => {}
        }
        tlv::close(&mut out, proprietary);
        tlv::close(&mut out, fci);
        out
    }

    /// READ RECORD (ISO 7816-4 §11.3.3, EMV Book 3 §6.5.11): P1 the record number, P2
    /// `SFI << 3 | 100` (P1 is a record number).
    ///
    /// `6A82` when the SFI does not exist in the current DF, `6A83` when the record does
    /// not; SFI 0 (the current EF, which this card never has) and other P2 encodings are
    /// `6A86`.
    pub(super) fn read_record(&mut self, apdu: &Apdu<'_>) -> Result<Vec<u8>, Sw> {
        let sfi = apdu.p2 >> 3;
        if apdu.p2 & 0x07 != 0x04 || sfi == 0 || sfi == 31 {
            return Err(Sw::WRONG_P1P2);
        }
        if !apdu.data.is_empty() {
            return Err(Sw::WRONG_LENGTH);
        }
        let number = apdu.p1;
        match self.session.selected {
            Selected::Pse if sfi == PSE_DIRECTORY_SFI => {
                let index = usize::from(number)
                    .checked_sub(1)
                    .ok_or(Sw::RECORD_NOT_FOUND)?;
                let app = self
                    .profile
                    .applications()
                    .get(index)
                    .ok_or(Sw::RECORD_NOT_FOUND)?;
                let mut out = Vec::with_capacity(64);
                let record = tlv::open(&mut out, 0x70);
                push_directory_entry(&mut out, app);
                tlv::close(&mut out, record);
                Ok(out)
            }
            Selected::Application(i) => {
                let app = self
                    .profile
                    .applications()
                    .get(i)
                    .ok_or(Sw::FILE_NOT_FOUND)?;
                if sfi == app.log().sfi {
                    // EMV Book 3 Annex D4: record 1 is the most recent entry.
                    let log = self
                        .state
                        .applications
                        .get(i)
                        .map(|s| &s.log)
                        .ok_or(Sw::FILE_NOT_FOUND)?;
                    let index = usize::from(number)
                        .checked_sub(1)
                        .ok_or(Sw::RECORD_NOT_FOUND)?;
                    return log.get(index).cloned().ok_or(Sw::RECORD_NOT_FOUND);
                }
                if !app.records().iter().any(|r| r.sfi == sfi) {
                    return Err(Sw::FILE_NOT_FOUND);
                }
                // Room for the status word the answer ends with, so that appending it
                // does not copy the record again.
                app.record(sfi, number)
                    .map(|r| {
                        let mut out = Vec::with_capacity(r.data.len().saturating_add(2));
                        out.extend_from_slice(&r.data);
                        out
                    })
                    .ok_or(Sw::RECORD_NOT_FOUND)
            }
            _ => Err(Sw::FILE_NOT_FOUND),
        }
    }
}

/// Appends an Application Template `61` as the PSE records and the PPSE list them (EMV
/// Book 1 §12.2.3, table 47).
fn push_directory_entry(out: &mut Vec<u8>, app: &crate::profile::ApplicationProfile) {
    let entry = tlv::open(out, 0x61);
    tlv::push(out, 0x4F, app.aid());
    tlv::push(out, 0x50, app.label().as_bytes());
    if let Some(name) = app.preferred_name() {
        tlv::push(out, 0x9F12, name.as_bytes());
    }
    tlv::push(out, 0x87, &[app.priority()]);
    tlv::close(out, entry);
}
