#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into fuzz/corpus/<target>/.

Seeds are named `seed-<what>` so they stay recognisable among the files libFuzzer adds
(named by their SHA-1). Run from anywhere: `python3 fuzz/make_seeds.py`. Re-running it
after `cargo +nightly fuzz cmin` puts back any named seed the minimisation dropped, so
the realistic dialogues stay in the corpus as documentation of the input formats.

Every byte string below is written out here by hand from the specs and from the
shipped card profiles (card-applet-sim/profiles/*.toml); real card data comes from the
fixture files of tests/fixtures/, which name their own sources.
"""

from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent


def h(text: str) -> bytes:
    """Hex with spaces/newlines allowed."""
    return bytes.fromhex("".join(text.split()))


def write(target: str, name: str, data: bytes) -> None:
    directory = FUZZ / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{name}").write_bytes(data)


# ---- apdu_command: one row per ISO 7816-4 §5.1 case, then malformed shapes ----------
APDU_COMMANDS = {
    "case1": "00A40400",
    "case2s-read-record": "00B2010C00",
    "case2s-le-ff": "00B2010CFF",
    "case3s-verify": "0020008008241234FFFFFFFFFF",
    "case4s-select-aid": "00A4040007A000000042101000",
    "case4s-gpo": "80A8000002830000",
    "case2e": "00B2010C000100",
    "case2e-65536": "00B2010C000000",
    "case3e": "80E2000000000301 0203",
    "case4e-pso-cds": "002A9E9A000004 01020304 0000",
    "case4e-short-fields-extended": "00A40400000002 3F00 0100",
    "bad-empty": "",
    "bad-short-header": "00A404",
    "bad-lc-mismatch": "00A4040005 0102",
    "bad-trailing": "00A4040002 3F00 00 00",
    "bad-extended-lc-short-le": "00A40400000002 3F00 00",
    "bad-truncated-extended": "00A4040000 01",
    "bad-zero-extended-lc": "00A4040000 0000 01",
}

# ---- apdu_response: data + SW, ISO 7816-4 §5.6 and EMV status words -----------------
APDU_RESPONSES = {
    "success": "9000",
    "fci": "6F0F8407A0000000421010A504500243429000",
    "pin-blocked": "6983",
    "pin-2-tries": "63C2",
    "more-available": "611C",
    "wrong-le": "6C10",
    "conditions": "6985",
    "unknown": "6F00",
    "short": "90",
}

# ---- atr: the shipped profiles' ATRs and a few real ones --------------------------
ATRS = {
    "profile-cb": "3BE800008031FE458073C6010052434285",
    "profile-visa": "3BE900008131FE458073C6010053564953C9",
    "profile-mastercard": "3BE800008131FE458073C60100524D438B",
    "profile-t0-slow": "3B6800008073C60100525430",
    "profile-blocked": "3BE800008031FE458073C6010052424B8D",
    "t0-only": "3B6E00008031 8066B0840C016E0183009000",
    "t1-tck": "3BF81300008131FE454A434F5076323431B7",
    "t0-t15": "3B9F96801FC68031E073FE211B6441024100829000C2",
    "inverse": "3F2F008069AF0307066800000A0E833E9F16",
    "bad-ts": "03",
    "bad-tck": "3BF81300008131FE454A434F5076323431B6",
}

# ---- reader_uri: every documented form (src/reader/uri.rs) -------------------------
READER_URIS = {
    "sim": "sim:",
    "sim-profile": "sim:visa",
    "sim-file": "sim:profiles/my%20card.toml",
    "sim-state-seed": "sim:cb?state=/tmp/cb.state&seed=42",
    "pcsc": "pcsc:",
    "pcsc-name": "pcsc:Gemalto%20PC%20Twin?share=exclusive",
    "serial": "serial:/dev/ttyUSB0?baud=9600&parity=even&stop=2&echo=on&reset=rts&protocol=t0",
    "replay": "replay:traces/cb-purchase.trace",
    "bad-scheme": "nfc:reader",
    "bad-escape": "sim:%G1",
    "bad-duplicate": "sim:cb?seed=1&seed=2",
}

# ---- tlv: BER-TLV objects and DOLs ---------------------------------------------------
TLVS = {
    "fci-cb": "6F1A8407A0000000421010A50F500243428701019F38009F2D02 6672",
    "record-padded": "00 70 0A 5A 08 4970100000000014 FF FF",
    "long-lengths": "70 81 03 9F 36 00 DF51 82 0001 AA",
    "cdol1-cb": "9F02069F03069F1A0295055F2A029A039C019F37049F7C14",
    "cdol2": "8A02910A95059F3704",
    "cvm-list": "8E10 0000000000000000410342031E031F03",
    "amount-currency": "9F0206000000001250 5F2A020978 5F3601 02",
    "dates": "5F2403281231 9A03251125 9F2103123456",
    "bits": "820219 80 9F0702FF00 9505 8000048000 9F3403 410302 9F3303 E0F8C8",
    "afl-log": "9410 08010100 10010200 18010100 58010A00 9F4D020B0A",
    "bad-indefinite": "70 80 5A 01 12 00 00",
    "bad-too-long": "70 85 0000000001 00",
    "nested": "70 04 70 02 70 00",
}


def frames(*apdus: str) -> bytes:
    """card_transmit frames: a length byte then the APDU; "WARM"/"COLD" are resets."""
    out = bytearray()
    for apdu in apdus:
        if apdu == "WARM":
            out.append(0xFF)
        elif apdu == "COLD":
            out.append(0xFE)
        else:
            data = h(apdu)
            assert len(data) < 0xFD, apdu
            out.append(len(data))
            out += data
    return bytes(out)


# Profile selector byte: index into Profile::builtin_names().
CB, VISA, MASTERCARD, T0_SLOW, BLOCKED = range(5)

SELECT_PPSE = "00A404000E 325041592E5359532E4444463031 00"
SELECT_PSE = "00A404000E 315041592E5359532E4444463031 00"
SELECT_CB = "00A4040007 A0000000421010 00"
SELECT_VISA = "00A4040007 A0000000031010 00"
SELECT_MC = "00A4040007 A0000000041010 00"
SELECT_PARTIAL = "00A4040005 A000000042 00"
SELECT_NEXT = "00A4040205 A000000042 00"
READ_SFI1_R1 = "00B2010C00"
READ_SFI2_R1 = "00B2011400"
READ_SFI2_R2 = "00B2021400"
READ_LOG_R1 = "00B2015C00"
VERIFY_1234 = "0020008008 241234FFFFFFFFFF"
VERIFY_9999 = "0020008008 249999FFFFFFFFFF"
GET_CHALLENGE = "0084000008"
GET_ATC = "80CA9F3600"
GET_TRIES = "80CA9F1700"
GET_LAST_ONLINE_ATC = "80CA9F1300"
GET_LOG_FORMAT = "80CA9F4F00"
GET_PUBLIC_KEY = "80CADF5100"
# CDOL1 data: amount 12.50, other 0, country 0250 (France), TVR 0, currency 0978 (EUR),
# date 2025-11-25, type 00 (goods and services), unpredictable number 12345678.
CDOL1_COMMON = "000000001250 000000000000 0250 0000000000 0978 251125 00 12345678"
MERCHANT_DATA = "5445535420534552564943452030303030303031"  # "TEST SERVICE 0000001"
GEN_AC1_CB = f"80AE800031 {CDOL1_COMMON} {MERCHANT_DATA} 00"
GEN_AC1_VISA = f"80AE80001D {CDOL1_COMMON} 00"
GEN_AC1_TC_CB = f"80AE400031 {CDOL1_COMMON} {MERCHANT_DATA} 00"
# CDOL2 data: ARC "00", issuer authentication data (a wrong ARPC, then ARC), TVR, UN.
GEN_AC2 = "80AE400015 3030 1122334455667788 3030 0000000000 87654321 00"
PSO_CDS = "002A9E9A20 " + "00" * 31 + "01 00"

CARD_DIALOGUES = {
    "cb-purchase": (CB, [
        SELECT_PPSE, SELECT_CB, "80A8000002830000", READ_SFI1_R1, READ_SFI2_R1,
        READ_SFI2_R2, GET_ATC, GET_TRIES, VERIFY_1234, GET_CHALLENGE, GEN_AC1_CB,
        GEN_AC2, GET_LAST_ONLINE_ATC, READ_LOG_R1,
    ]),
    # Both applications of the co-badged cb card: each keeps its own ATC.
    "cb-two-applications": (CB, [
        SELECT_CB, "80A8000002830000", VERIFY_1234, GEN_AC1_CB, SELECT_PPSE, SELECT_VISA,
        "80A8000002830000", GEN_AC1_VISA, GET_ATC, SELECT_CB, GET_ATC,
    ]),
    "cb-sign": (CB, [SELECT_CB, GET_PUBLIC_KEY, PSO_CDS, VERIFY_1234, PSO_CDS]),
    "cb-pse-partial": (CB, [
        SELECT_PSE, READ_SFI1_R1, SELECT_PARTIAL, SELECT_NEXT, SELECT_NEXT, GET_LOG_FORMAT,
    ]),
    "cb-wrong-pin": (CB, [
        SELECT_CB, "80A8000002830000", VERIFY_9999, VERIFY_9999, "WARM", SELECT_CB,
        "80A8000002830000", VERIFY_9999, VERIFY_1234, GET_TRIES,
    ]),
    "cb-offline-tc": (CB, [SELECT_CB, "80A8000002830000", VERIFY_1234, GEN_AC1_TC_CB, "COLD",
                           SELECT_CB, "80A8000002830000", GEN_AC1_TC_CB]),
    "cb-out-of-order": (CB, [GEN_AC1_CB, SELECT_CB, GEN_AC2, READ_SFI2_R1, "80A80000028300"]),
    "visa-purchase": (VISA, [
        SELECT_PPSE, SELECT_VISA, "80A8000008 8306 0250 12345678 00", READ_SFI1_R1,
        READ_SFI2_R1, READ_SFI2_R2, VERIFY_1234, GEN_AC1_VISA, GEN_AC2,
    ]),
    "mastercard-purchase": (MASTERCARD, [
        SELECT_PPSE, SELECT_MC, "80A8000003 8301 22 00", READ_SFI1_R1, READ_SFI2_R1,
        VERIFY_1234, GEN_AC1_VISA, GEN_AC2, GET_ATC,
    ]),
    "t0-slow-get-response": (T0_SLOW, [
        SELECT_CB, "00C0000000", "80A8000004 8302 0250 00", "00C0000010", "00C0000000",
        "00B2010C00", "00B2010C10", VERIFY_1234, GEN_AC1_CB, "00C0000000",
    ]),
    "blocked": (BLOCKED, [SELECT_CB, "80A8000002830000", VERIFY_1234, GET_TRIES, PSO_CDS]),
}


# ---- trace_format: the .trace fixtures, the shipped traces, then every grammar rule and
# every error of docs/trace-format.md (§1 lines, §2 grammar, §3 version, §9 errors) ----
TRACE_TEXTS = {
    "minimal": "telepay-trace 1\n",
    "crlf": "telepay-trace 1\r\n@reader sim:cb\r\n\r\n> 00A4040000\r\n< 9000  @5us\r\n",
    "no-final-newline": "telepay-trace 1\n\n> 00B2010C00\n< 6A83",
    "comment-inside-exchange": "telepay-trace 1\n> 00B2010C00\n# waiting\n\n< 6A83  #  note\n",
    "header-among-comments": "telepay-trace 1\n# c\n@atr 3B00\n@protocol T=1\n\t@x-key v a l\n@secrets recorded\n",
    "patterns": "telepay-trace 1\n\n> 00a4 0400 07 a0000000??1010 <aid-tail:2>00\n"
                "< ????<data_1:3> 9000 @1.5ms #\n@atr ?? 3B\n",
    "durations": "telepay-trace 1\n> 00\n< 9000 @0s\n> 00\n< 9000 @7ns\n> 00\n< 9000 @1.000001ms\n"
                 "> 00\n< 9000 @18446744073709551615.999999999s\n> 00\n< 9000 @3.s\n",
    "empty-comments": "telepay-trace 1\n#\n> 00\n< 9000  #\n#\n",
    "unicode-text": "telepay-trace 1\n@tool caf\u00e9 \u2014 \u00a0x\n# \u00e9t\u00e9 \u65e5\u672c\n> 00\n< 9000 # \u2028\n",
    "bad-empty": "",
    "bad-version-0": "telepay-trace 0\n",
    "bad-version-2": "telepay-trace 2\n",
    "bad-version-huge": "telepay-trace 99999999999999999999999999\n",
    "bad-bom": "\ufefftelepay-trace 1\n",
    "bad-odd-hex": "telepay-trace 1\n> 00A4040007A000000042101\n< 9000\n",
    "bad-stray-char": "telepay-trace 1\n> 00A4 0x90\n< 9000\n",
    "bad-odd-wildcard": "telepay-trace 1\n> 00???\n< 9000\n",
    "bad-redaction": "telepay-trace 1\n> 00 <PIN:8>\n< 9000\n> 00 <pin:0>\n< 9000\n",
    "bad-short-response": "telepay-trace 1\n> 00A40400\n< 90\n",
    "bad-duration": "telepay-trace 1\n> 00A40400\n< 9000 @134\n",
    "bad-glued-duration": "telepay-trace 1\n> 00A40400\n< 9000@5us\n",
    "bad-response-without-command": "telepay-trace 1\n< 9000\n",
    "bad-command-without-response": "telepay-trace 1\n> 00\n> 00\n< 9000\n",
    "bad-atr-inside-exchange": "telepay-trace 1\n> 00\n@atr 3B00\n< 9000\n",
    "bad-truncated": "telepay-trace 1\n\n> 00B2010C00\n",
    "bad-header-after-exchange": "telepay-trace 1\n> 00\n< 9000\n@reader sim:\n",
    "bad-duplicate-header": "telepay-trace 1\n@reader sim:\n@reader pcsc:\n",
    "bad-secrets": "telepay-trace 1\n@secrets maybe\n",
    "bad-key": "telepay-trace 1\n@Reader sim:\n",
    "bad-no-value": "telepay-trace 1\n@tool\n",
    "bad-line-start": "telepay-trace 1\nhello\n",
    "bad-control": "telepay-trace 1\n# bell \x07\n",
    "bad-c1-control": "telepay-trace 1\n# \u0085\n",
}
TRACE_BINARY = {
    "bad-binary": b"telepay-trace 1\n> 00 \xff\xfe\n< 9000\n",
    "bad-binary-comment": b"telepay-trace 1\n# caf\xc3\n",
}

# ---- import_*: per format, the fixture of tests/fixtures/import/ (as written and with
# CRLF line breaks) and hand-written logs for what the fixture does not show, each in
# the layout docs/trace-import.md gives for the tool --------------------------------
SPY_TRANSMIT = (
    "SCardTransmit\n i hCard: 0x0001E5C9\n i bSendLength 0x00000005 (5)\n i bSendBuffer\n"
    " i  0000 00 B2 01 0C 00                                  .....\n"
    " o bRecvLength 0x00000002 (2)\n o bRecvBuffer\n"
    " o  0000 6A 83                                           j.\n"
    " => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.011870]\n"
)
IMPORT_TEXTS = {
    "import_pcsc_spy": {
        "transmit": SPY_TRANSMIT,
        "colours": "\x1b[34mSCardTransmit\x1b[0m\n\x1b[32m i bSendBuffer\x1b[0m\n"
                   "\x1b[32m i  0000 00 A4 04 00 00                                  .....\x1b[0m\n"
                   "\x1b[35m o bRecvBuffer\x1b[0m\n"
                   "\x1b[35m o  0000 90 00                                           ..\x1b[0m\n"
                   "\x1b[32m => Command successful. (SCARD_S_SUCCESS [0x00000000])\x1b[0m  [0.000100]\n",
        # `pcsc-spy -t` tags (t1); another thread's block is indented by four spaces.
        "threads": "".join(f"(t1) {line}\n" for line in SPY_TRANSMIT.splitlines())
                   + "    SCardGetStatusChange\n     i hContext: 0x1\n",
        "layout-2011": "SCardTransmit\n i hCard: 0x00010001\n i bSendLength 0x00000005 (5)\n"
                       " i bSendBuffer 00 B2 01 0C 00\n o bRecvLength 0x00000002 (2)\n"
                       " o bRecvBuffer 6A 83\n => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000181]\n",
        "reconnect-reset": "SCardReconnect\n i hCard: 0x1\n i dwInitialization 0x00000001 (1)\n"
                           " => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.1]\n"
                           "SCardStatus\n o bAtr 3B 00\n => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.0]\n"
                           + SPY_TRANSMIT,
        "control-decoded": "SCardControl\n i hCard: 0x1\n i dwControlCode: 0x42330012\n"
                           " => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000020]\n"
                           "  Tag 0x06: 0x42330006\n" + SPY_TRANSMIT,
        "unanswered-end": "SCardTransmit\n i hCard: 0x1\n i bSendBuffer\n i  0000 00 A4 04 00\n",
        "statistics": "fifo: /root/pcsc-spy already present. Reusing it.\nCtrl-C, exiting.\n\n"
                      "Thread 1/1\nResults sorted by total execution time\ntotal time: 0.000100 sec\n"
                      "0.000100 sec (  1 calls) 100.00% SCardTransmit\nUnknown function: SCardFoo\n",
    },
    "import_opensc": {
        "windows-prefix": "P:1234; T:5678 2026-11-25 10:49:05.104 [opensc-tool] reader-pcsc.c:325:pcsc_transmit: \n"
                          "Outgoing APDU (5 bytes):\n00 B2 01 0C 00 .....\n"
                          "P:1234; T:5678 2026-11-25 10:49:05.999 [opensc-tool] reader-pcsc.c:334:pcsc_transmit: \n"
                          "Incoming APDU (2 bytes):\n6A 83 j.\n",
        "old-prefix-midnight": "0x7f1234 23:59:59.990 [opensc-tool] reader-pcsc.c:325:pcsc_transmit: \n"
                               "Outgoing APDU (1 byte):\n00 .\n"
                               "0x7f1234 00:00:00.010 [opensc-tool] reader-pcsc.c:334:pcsc_transmit: \n"
                               "Incoming APDU (2 bytes):\n90 00 ..\n",
        "other-dump": "P:1; T:0x1 10:00:00.000 [pkcs11-tool] card.c:1:f: \nSM APDU (3 bytes):\n01 02 03 ...\n",
        "cut-in-dump": "Outgoing APDU (20 bytes):\n00 A4 04 00 0E 32 50 41 59 2E 53 59 53 2E 44 44 .....2PAY.SYS.DD\n",
    },
    "import_vicc": {
        "unparsed": "25.11.2026 17:00:01  [INFO] Unparsed APDU:\n"
                    "0000:  00 B0 00 00 00                                   .....           \n"
                    "25.11.2026 17:00:01  [INFO] Response APDU (2 Bytes):\n"
                    "0000:  90 00                                            ..              \n\n",
        "extended": "25.11.2026 17:00:01  [INFO] Parsed APDU:\n"
                    "C_APDU(CLA=0x00, INS=0xB0, P1=0x00, P2=0x00, Le=0x1000)\n"
                    "25.11.2026 17:00:01  [INFO] Response APDU (2 Bytes):\n0000:  6B 00\n",
        "banner": "25.11.2026 17:00:00  [INFO] Waiting for vpcd on port 35963\nVICC hostname: host\n"
                  "VICC port: 35963\n25.11.2026 17:00:00  [INFO] Reset\n"
                  "25.11.2026 17:00:09  [INFO] Virtual PCD shut down\n",
        "warning-response": "25.11.2026 17:00:05  [WARNING] Invalid Lc value. Is 5, should be 10 or 11\n"
                            "25.11.2026 17:00:05  [INFO] Response APDU (2 Bytes):\n0000:  6A 80\n",
    },
    "import_cardpeek": {
        "minimal": "R:3B00\nC:00A4040000:9000:\nC:00B2010C00:9000:0102\n",
        "comments": "# cardpeek emulator\n# version 0\n# a note\nC:00A4040000:6A82:\n# end\n",
    },
    "import_apdu4j": {
        "bibo": "# ATR: 3B00\n# PROTOCOL: T=1\n# UID: 04A1B2C3\n#\n00A4040000\n# 2ms\n6A82\n",
        "failed": "00A4040000\n# 5ms Card was removed\n00B0000000\n# 0.52ms\n9000\n",
        "generated": "# Generated on Thu, 1 Jan 2026 00:30:00 +0200 by apdu4j/20.1\n# Using Reader\n",
    },
    "import_gp": {
        "raw": "B>> T=1 (5) 00B2010C00\nB<< (2) 6A83\n",
        "failed": "A>> T=1 (4+0000) 00A40400 00 \n<< (5ms) Card was removed\n"
                  "A>> T=1 (4+0000) 00B00000 00 \nA<< (0000+2) (3ms) 9000\n",
        "connect-failed": "SCardConnect(\"Reader\", T=*) -> SCARD_E_NO_SMARTCARD\n"
                          "[DEBUG] GPTool - no card\nSCardControl(\"Reader\", 0x42330012)\n",
        "exception": "A>> T=0 (4+0000) 00A40400 00\n<< Exception (12ms)\n",
    },
    "import_pyscard": {
        "minimal": "connecting to Reader\n> 00 A4 04 00 00\n<  [] 90 00\n",
        "unanswered": "> 00 A4 04 00 00\n> 00 B0 00 00 00\n<  [] 90 00\n",
        "data": "> 00 B0 00 00 02\n< 01 02 90 00\ndisconnecting from Reader\n",
    },
}
IMPORT_FIXTURES = {
    "import_pcsc_spy": "pcsc-spy.log",
    "import_opensc": "opensc.log",
    "import_vicc": "vicc.log",
    "import_cardpeek": "cardpeek.clf",
    "import_apdu4j": "apdu4j.dump",
    "import_gp": "gp.log",
    "import_pyscard": "pyscard.log",
}


def trace_seeds() -> None:
    for directory, prefix in ((ROOT / "tests" / "fixtures" / "trace", "fixture"),
                              (ROOT / "traces", "trace")):
        for path in sorted(directory.glob("*.trace")):
            write("trace_format", f"{prefix}-{path.stem.replace('.', '-')}", path.read_bytes())
    for name, text in TRACE_TEXTS.items():
        write("trace_format", name, text.encode())
    for name, data in TRACE_BINARY.items():
        write("trace_format", name, data)


def import_seeds() -> None:
    for target, file_name in IMPORT_FIXTURES.items():
        fixture = ROOT / "tests" / "fixtures" / "import" / file_name
        if fixture.exists():
            data = fixture.read_bytes()
            write(target, "fixture", data)
            write(target, "fixture-crlf", data.replace(b"\n", b"\r\n"))
    for target, texts in IMPORT_TEXTS.items():
        for name, text in texts.items():
            write(target, name, text.encode())


def main() -> None:
    for name, text in APDU_COMMANDS.items():
        write("apdu_command", name, h(text))
    for name, text in APDU_RESPONSES.items():
        write("apdu_response", name, h(text))
    for name, text in ATRS.items():
        write("atr", name, h(text))
    real_atrs = ROOT / "tests" / "fixtures" / "atr" / "real_atrs.txt"
    if real_atrs.exists():
        for number, line in enumerate(real_atrs.read_text().splitlines()):
            if line.strip() and not line.startswith("#"):
                write("atr", f"real-{number:03}", h(line.split("|")[0]))
    for name, text in READER_URIS.items():
        write("reader_uri", name, text.encode())
    for name, text in TLVS.items():
        write("tlv", name, h(text))
    fixtures = ROOT / "tests" / "fixtures" / "tlv"
    if fixtures.is_dir():
        for path in sorted(fixtures.glob("*.hex")):
            lines = [line for line in path.read_text().splitlines()
                     if line.strip() and not line.startswith("#")]
            write("tlv", f"fixture-{path.stem}", h("".join(lines)))
    for name, (profile, apdus) in CARD_DIALOGUES.items():
        write("card_transmit", name, bytes([profile]) + frames(*apdus))
    trace_seeds()
    import_seeds()


if __name__ == "__main__":
    main()
