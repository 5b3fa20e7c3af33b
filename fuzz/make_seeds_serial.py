#!/usr/bin/env python3
"""Writes the hand-made seeds of the ISO 7816-3 engine targets into fuzz/corpus/<target>/.

Targets: t0_host, t0_card, t1_host, t1_card, t1_roundtrip, atr_receiver, pps. Seeds
are named `seed-<what>` so they stay recognisable among libFuzzer's SHA-1-named files;
re-run this after `cargo +nightly fuzz cmin` to put back any seed it dropped. Run
from anywhere: `python3 fuzz/make_seeds_serial.py`.

Each target's input layout is documented at the top of its fuzz_targets/*.rs file;
the steps after the header bytes are those of fuzz_targets/common/line.rs:

    00..=7F  a piece of C % 64 + 1 characters      (here: piece(...))
    80..=BF  a T=1 block the target frames itself   (here: structured(...))
    C0..=DF  the deadline fires, C % 16 ms late     (here: TIMEOUT)
    E0..=EF  a call just before the deadline        (here: EARLY)
    F0..=FF  a target action                        (here: action(n))

The dialogues are written from ISO 7816-3 §8 (ATR), §9 (PPS), §10 (T=0: procedure
bytes NULL 60, INS, INS xor FF, SW1 SW2) and §11 (T=1 blocks: NAD PCB LEN INF LRC/CRC,
I(N(S), M), R(N(R)), S(RESYNCH/IFS/ABORT/WTX)), and the ATRs from the shipped profiles
and tests/fixtures/atr/real_atrs.txt.
"""

from pathlib import Path

FUZZ = Path(__file__).resolve().parent

TIMEOUT = bytes([0xC0])
EARLY = bytes([0xE0])


def h(text: str) -> bytes:
    """Hex with spaces allowed."""
    return bytes.fromhex("".join(text.split()))


def piece(data: bytes) -> bytes:
    """Characters arriving together (split every 64 bytes: a piece holds at most 64)."""
    out = b""
    for start in range(0, len(data), 64):
        chunk = data[start : start + 64]
        out += bytes([len(chunk) - 1]) + chunk
    return out


def pieces(*parts: bytes) -> bytes:
    return b"".join(piece(part) for part in parts)


def one_by_one(data: bytes) -> bytes:
    return b"".join(piece(bytes([byte])) for byte in data)


def action(n: int) -> bytes:
    return bytes([0xF0 | n])


def write(target: str, name: str, data: bytes) -> None:
    directory = FUZZ / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{name}").write_bytes(data)


# ---- T=1 framing (§11.3): LRC is the XOR of NAD..INF; the CRC is the one the engine
# documents (CRC-16/MCRF4XX: reflected 0x8408, init FFFF, no final XOR, sent MSB first).
def lrc(data: bytes) -> int:
    out = 0
    for byte in data:
        out ^= byte
    return out


def crc(data: bytes) -> int:
    value = 0xFFFF
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0x8408 if value & 1 else value >> 1
    return value


def block(pcb: int, inf: bytes = b"", nad: int = 0, use_crc: bool = False) -> bytes:
    body = bytes([nad, pcb, len(inf)]) + inf
    return body + (crc(body).to_bytes(2, "big") if use_crc else bytes([lrc(body)]))


def i_block(ns: int, more: bool, inf: bytes, **kw) -> bytes:
    return block((ns << 6) | (0x20 if more else 0), inf, **kw)


def r_block(nr: int, error: int = 0, **kw) -> bytes:
    return block(0x80 | (nr << 4) | error, **kw)


def s_block(kind: int, response: bool, inf: bytes = b"", **kw) -> bytes:
    return block(0xC0 | (0x20 if response else 0) | kind, inf, **kw)


RESYNCH, IFS, ABORT, WTX = 0, 1, 2, 3


def structured(control: int, pcb: int, inf_len: int, inf: bytes = b"", split: int = 0) -> bytes:
    """A block the target frames (t1_host, t1_card): control bits 0 bad EDC, 1 wrong
    NAD, 2 split at `split`, 4 INF is a pattern of inf_len bytes."""
    out = bytes([0x80 | control, pcb, inf_len])
    if not control & 0x10:
        out += inf
    if control & 0x04:
        out += bytes([split])
    return out


def t1_link(crc_: bool = False, nad: bool = False, retransmissions: int = 2, char_time: bool = False) -> int:
    """Flags byte F of the T=1 targets (fuzz_targets/common/t1.rs)."""
    return (1 if crc_ else 0) | (2 if nad else 0) | (retransmissions << 2) | (0x10 if char_time else 0)


def ifs(value: int) -> int:
    """The input byte that common/t1.rs maps to IFS `value` (byte % 254 + 1)."""
    return value - 1


# ---- t0_host: CLA INS P1 P2 P3, F (bit 0 incoming), then the card's characters ------
def t0_host() -> None:
    seeds = {
        # §10.3.3: INS asks for all data at once; SW 61xx (data waits for GET RESPONSE).
        "select-aid-ins-ack": h("00 A4 04 00 07 01") + pieces(h("A4"), h("61 1C")),
        # NULL bytes while the card works, then INS and the 16 data bytes, then 9000.
        "read-record-nulls": h("00 B2 01 0C 10 00")
        + pieces(h("60"), h("60 B2"), bytes(range(16)), h("90 00")),
        # INS xor FF before each byte: the PIN block goes one byte at a time.
        "verify-ack-each-byte": h("00 20 00 80 08 01") + one_by_one(h("DF") * 8) + piece(h("90 00")),
        # INS xor FF for outgoing data: the card sends byte by byte.
        "get-challenge-byte-by-byte": h("00 84 00 00 04 00")
        + one_by_one(h("7B 11 7B 22 7B 33 7B 44"))
        + piece(h("90 00")),
        # GET RESPONSE after 61 1C: 28 bytes and 9000 in one read.
        "get-response": h("00 C0 00 00 1C 00") + piece(h("C0") + bytes(range(0x40, 0x5C)) + h("90 00")),
        # 6Cxx: wrong Le, the exact length in SW2.
        "wrong-le-6c": h("00 B2 01 0C 00 00") + piece(h("6C 1C")),
        # P3 = 00 on an outgoing command: 256 bytes.
        "read-binary-256": h("00 B0 00 00 00 00") + piece(h("B0")) + piece(bytes(256)) + piece(h("90 00")),
        # The card goes silent after a NULL: WWT fires (§10.2).
        "timeout-after-null": h("00 B2 01 0C 10 00") + piece(h("60")) + EARLY + TIMEOUT,
        # A byte that is no procedure byte (§10.3.3).
        "protocol-violation": h("00 A4 04 00 02 01") + piece(h("12")),
        # SW2 and a stray byte in the same read.
        "trailing-after-sw": h("00 A4 04 00 02 01") + piece(h("A4 90 00 FF")),
        # SW1 straight away: the card refuses before taking data.
        "refused-before-data": h("00 DA 9F 4F 02 01") + piece(h("69 85")),
        # INS 6X is invalid under T=0 (§10.3.2).
        "invalid-ins": h("00 6A 00 00 00 00"),
    }
    for name, data in seeds.items():
        write("t0_host", name, data)


# ---- t0_card: F (bit 0 ack_each_byte, bits 1-2 NULLs), then the host's characters -----
def t0_card() -> None:
    # The application (t0_card.rs) answers by P1: b3-b1 the shape, b5-b4 the status.
    seeds = {
        # SELECT (incoming): header, INS, data; P1 04 -> 256 bytes held, 61 00; then
        # GET RESPONSE 256 bytes and 9000.
        "select-then-get-response": h("00") + pieces(h("00 A4 04 00 07"), h("A0 00 00 00 42 10 10"))
        + piece(h("00 C0 00 00 00")),
        # GET RESPONSE asking for fewer than held: 61xx for the rest.
        "get-response-in-parts": h("00") + pieces(h("00 A4 04 00 02"), h("3F 00"), h("00 C0 00 00 80"), h("00 C0 00 00 80")),
        # READ RECORD, P1 01: Ne bytes exactly, INS then data then 9000.
        "read-record-exact": h("00") + piece(h("00 B2 01 0C 10")),
        # P1 02: one byte short of Ne -> 6Cxx; re-issued with the length given.
        "read-record-6c": h("00") + pieces(h("00 B2 02 0C 10"), h("00 B2 02 0C 0F")),
        # P1 05: 300 bytes for Le 00 (256): 256 now, 61 2C, GET RESPONSE for the rest.
        "read-binary-more-than-256": h("00") + pieces(h("00 B0 05 00 00"), h("00 C0 00 00 2C")),
        # ack_each_byte: VERIFY's PIN block one byte at a time.
        "verify-ack-each-byte": h("01") + piece(h("00 20 00 80 08")) + one_by_one(h("24 12 34 FF FF FF FF FF")),
        # Three NULL bytes before each computed answer.
        "nulls-before-answer": h("06") + piece(h("80 CA 9F 36 02")),
        # A header cut short: the card discards it after its idle time.
        "header-cut-short": h("00") + piece(h("00 A4 04")) + EARLY + TIMEOUT + piece(h("00 B2 01 0C 10")),
        # Data cut short.
        "data-cut-short": h("00") + pieces(h("00 A4 04 00 07"), h("A0 00 00")) + TIMEOUT,
        # Bytes after a header in the same read: refused (the card had not answered).
        "bytes-after-header": h("00") + piece(h("00 B2 01 0C 10 AA BB")),
        # INS 6X/9X: 6D00.
        "invalid-ins": h("00") + piece(h("00 6A 00 00 00")),
        # Answers T=0 cannot carry: too short (P1 06) and SW1 12 (P1 07): 6F00.
        "application-bad-answers": h("00") + pieces(h("00 B2 06 0C 10"), h("00 B2 07 0C 10")),
        # GET RESPONSE with wrong P1-P2 while data is held: 6A86.
        "get-response-wrong-p1p2": h("00") + pieces(h("00 A4 04 00 02"), h("3F 00"), h("00 C0 01 00 00")),
        # Status words 6A82, 6283, 9F10 (P1 b5-b4).
        "status-words": h("00") + pieces(h("00 B2 08 0C 10"), h("00 B2 10 0C 10"), h("00 B2 18 0C 10")),
        # EMV GENERATE AC (proprietary class, incoming).
        "generate-ac": h("00") + pieces(h("80 AE 44 00 05"), h("01 02 03 04 05"), h("00 C0 00 00 00")),
    }
    for name, data in seeds.items():
        write("t0_card", name, data)


# ---- t1_host: F IFSC IFSD OP V LEN, then the card's characters ------------------------
def t1_host() -> None:
    f = t1_link()
    head = lambda op=0, value=0, length=0, ifsc=32, ifsd=254, flags=f: bytes(
        [flags, ifs(ifsc), ifs(ifsd), op, value, length]
    )
    seeds = {
        # The APDU in one I-block; the card answers I(0) with 9000 (§11.6.2).
        "case1-9000": head() + piece(i_block(0, False, h("90 00"))),
        # A chained response: I(0, M) acknowledged by R(1), then I(1) (§11.6.2 rule 5).
        "chained-response": head()
        + piece(i_block(0, True, bytes(range(20))))
        + piece(i_block(1, False, bytes(range(20, 30)) + h("90 00"))),
        # A 64-byte APDU chained by IFSC 16: the card acknowledges with R(1), R(0), R(1).
        "chained-command": head(length=20, ifsc=16)
        + piece(r_block(1))
        + piece(r_block(0))
        + piece(r_block(1))
        + piece(i_block(0, False, h("61 10"))),
        # S(WTX request) x2 granted (§11.4.3), then the answer.
        "wtx-then-response": head() + piece(s_block(WTX, False, h("02")))
        + piece(i_block(0, False, h("90 00"))),
        # The card announces IFSC 16 with S(IFS request) (§11.4.2).
        "card-ifs-request": head(length=20) + piece(s_block(IFS, False, h("10")))
        + piece(r_block(1)) + piece(r_block(0)) + piece(r_block(1))
        + piece(i_block(0, False, h("90 00"))),
        # The host announces IFSD 254 first; the card confirms; then the command.
        "ifsd-negotiation": head(op=1, value=ifs(254)) + piece(s_block(IFS, True, h("FE")))
        + piece(i_block(0, False, h("90 00"))),
        # The host resynchronises first (§11.6.3 rule 6).
        "resynch-first": head(op=2) + piece(s_block(RESYNCH, True)) + piece(i_block(0, False, h("90 00"))),
        # A bad LRC: the host waits CWT, sends R(0) with the EDC error, the card repeats.
        "bad-edc-then-repeat": head()
        + piece(i_block(0, False, h("90 00"))[:-1] + b"\x00")
        + TIMEOUT
        + piece(i_block(0, False, h("90 00"))),
        # A block cut short: CWT fires (§11.4.3).
        "cut-short": head() + piece(i_block(0, False, h("90 00"))[:3]) + TIMEOUT + piece(i_block(0, False, h("90 00"))),
        # The card asks for the I-block again: R(0) with N(R) = N(S) (§11.6.3 rule 7).
        "r-block-asks-again": head() + piece(r_block(0, 2)) + piece(i_block(0, False, h("90 00"))),
        # Nothing ever comes: retransmissions, resynchronisations, then the host gives up.
        "silent-card": head() + TIMEOUT * 8,
        # CRC epilogue.
        "crc-response": head(flags=t1_link(crc_=True)) + piece(i_block(0, False, h("90 00"), use_crc=True)),
        # NAD 12 on the host: the card answers with NAD 21 (§11.3.2.1).
        "nad-21": head(flags=t1_link(nad=True)) + piece(i_block(0, False, h("90 00"), nad=0x21)),
        # The card aborts (§11.6.3 rule 9).
        "card-aborts": head() + piece(s_block(ABORT, False)),
        # Two commands in a row: N(S) alternates.
        "two-commands": head(op=3) + piece(i_block(0, False, h("90 00"))) + piece(i_block(1, False, h("6A 82"))),
        # Blocks framed by the target: an I-block with a pattern INF, one with a bad EDC.
        "structured-blocks": head() + structured(0x10, 0x20, 200) + structured(0x01, 0x40, 2, h("90 00"))
        + TIMEOUT + structured(0x04, 0x40, 2, h("90 00"), split=3),
        # Parity error reported, then the deadline.
        "parity-error": head() + piece(i_block(0, False, h("90 00"))[:2]) + action(1) + TIMEOUT,
    }
    for name, data in seeds.items():
        write("t1_host", name, data)


# ---- t1_card: F IFSC IFSD APP V, then the host's characters ---------------------------
def t1_card() -> None:
    f = t1_link()
    head = lambda app=0, value=0, ifsc=254, ifsd=32, flags=f: bytes([flags, ifs(ifsc), ifs(ifsd), app, value])
    select = h("00 A4 04 00 07 A0 00 00 00 42 10 10 00")  # P1 04: a 14-byte answer
    seeds = {
        # A command in one I-block; the card answers at once.
        "select": head() + piece(i_block(0, False, select)),
        # A chained command (IFSC 8): the card acknowledges each part with R(N(R)).
        "chained-command": head(ifsc=8)
        + piece(i_block(0, True, select[:8]))
        + piece(i_block(1, False, select[8:])),
        # A long response by IFSD 32: P1 40 -> 194 bytes, the host acknowledges parts.
        "chained-response": head()
        + piece(i_block(0, False, h("00 B2 40 0C 00")))
        + b"".join(piece(r_block(n % 2)) for n in range(1, 8)),
        # The host announces IFSD 254 (§11.4.2), then a command.
        "ifsd-254": head() + piece(s_block(IFS, False, h("FE"))) + piece(i_block(0, False, h("00 B2 40 0C 00"))),
        # The application asks for more time: S(WTX request), the host's response.
        "wtx": head(app=1, value=3) + piece(i_block(0, False, select)) + piece(s_block(WTX, True, h("03"))),
        # The application announces IFSC 16 before answering.
        "card-ifs-request": head(app=2, value=ifs(16)) + piece(i_block(0, False, select))
        + piece(s_block(IFS, True, h("10"))),
        # The application answers only later (action F0).
        "deferred": head(app=3) + piece(i_block(0, False, select)) + piece(r_block(0)) + action(0),
        # Resynchronisation drops the command in progress (§11.6.3 rule 6.3).
        "resynch-while-processing": head(app=3) + piece(i_block(0, False, select))
        + piece(s_block(RESYNCH, False)) + action(0),
        # Abort of a chain (§11.6.3 rule 9).
        "abort-chain": head(ifsc=8) + piece(i_block(0, True, select[:8])) + piece(s_block(ABORT, False)),
        # A bad EDC: after CWT of silence the card answers R(0) with the EDC error.
        "bad-edc": head() + piece(i_block(0, False, select)[:-1] + b"\x00") + EARLY + TIMEOUT,
        # Wrong N(S): an R-block asking for the expected I-block.
        "wrong-sequence": head() + piece(i_block(1, False, select)),
        # Two blocks in one read: the first is misframed (§11.6.2).
        "two-blocks-one-read": head() + piece(i_block(0, False, select) + r_block(0)),
        # CRC and NAD 12 (the card answers 21).
        "crc-nad": head(flags=t1_link(crc_=True, nad=True)) + piece(i_block(0, False, select, nad=0x12, use_crc=True)),
        # Blocks framed by the target, one split, one with the wrong NAD.
        "structured-blocks": head() + structured(0x04, 0x00, 5, h("00 B2 01 0C 00"), split=2)
        + structured(0x02, 0x80, 0) + TIMEOUT,
        # Parity error on a block.
        "parity-error": head() + piece(i_block(0, False, select)[:4]) + action(1) + TIMEOUT,
    }
    for name, data in seeds.items():
        write("t1_card", name, data)


# ---- t1_roundtrip: F IFSC IFSD OP V LEN R, then one fault byte per block -------------
def t1_roundtrip() -> None:
    f = t1_link()
    head = lambda op=0, value=0, length=3, r=4, ifsc=32, ifsd=32, flags=f: bytes(
        [flags, ifs(ifsc), ifs(ifsd), op, value, length, r]
    )
    intact = b"\x00"
    seeds = {
        "clean": head(),
        "clean-chained-both-ways": head(length=40, r=60, ifsc=16, ifsd=16),
        "clean-ifsd-254-crc": head(op=1, value=ifs(254), r=100, flags=t1_link(crc_=True)),
        "wtx-application": head(op=2, value=2),
        "card-ifs-request": head(op=4, value=ifs(8), r=20),
        # A flipped byte in the command, then in the answer.
        "flipped-bytes": head() + h("A0 01 40") + intact + h("A0 02 01"),
        # Lost blocks: the host's BWT, R-blocks.
        "lost-blocks": head(length=20, ifsc=16) + h("B0") + intact + h("B0") + intact * 4,
        # Doubled in one read, noise after, cut short, split, noise before, parity error.
        "every-fault": head(length=20, r=30, ifsc=16, ifsd=16)
        + h("B8") + h("C0 AA") + h("C8 02") + h("D0 03") + h("E0 55") + h("F0") + intact * 8,
        # Faults on every block until the host resynchronises.
        "many-faults": head() + h("B0") * 12,
        "nad-12": head(flags=t1_link(nad=True)) + h("A0 00 01"),
    }
    for name, data in seeds.items():
        write("t1_roundtrip", name, data)


# ---- atr_receiver: the card's ATR characters, as read -----------------------------------
def invert(byte: int) -> int:
    """§8.1: a character of an inverse-convention card as a direct UART reads it."""
    return (~int(f"{byte:08b}"[::-1], 2)) & 0xFF


def atr_receiver() -> None:
    atrs = {
        "profile-cb": h("3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 43 42 85"),
        "profile-t0-slow": h("3B 68 00 00 80 73 C6 01 00 52 54 30"),
        "t1-tck": h("3B F8 13 00 00 81 31 FE 45 4A 43 4F 50 76 32 34 31 B7"),
        "t0-t15": h("3B 9F 96 80 1F C6 80 31 E0 73 FE 21 1B 64 41 02 41 00 82 90 00 C2"),
        "shortest": h("3B 00"),
    }
    for name, atr in atrs.items():
        write("atr_receiver", f"{name}", piece(atr))
        write("atr_receiver", f"{name}-byte-by-byte", one_by_one(atr))
    inverse = h("3F 67 25 00 2A 20 00 0F 68 90 00")
    as_read = bytes([0x03]) + bytes(invert(b) for b in inverse[1:])
    seeds = {
        # §8.1: an inverse-convention card read by a direct UART (TS 03).
        "inverse-read-as-03": piece(as_read),
        # ... and decoded by the reader (TS 3F).
        "inverse-decoded-3f": piece(inverse),
        # Trailing bytes after the ATR (a PPS answer following).
        "trailing": piece(h("3B 68 00 00 80 73 C6 01 00 52 54 30 FF 10 02 ED")),
        # More characters after the ATR was taken.
        "after-end": piece(h("3B 00")) + piece(h("60")),
        # Cut short: the inter-character deadline fires (§8.2).
        "incomplete": piece(h("3B E8 00 00 80 31")) + EARLY + TIMEOUT,
        # No TS at all: no answer.
        "no-answer": TIMEOUT,
        # A bad TS, a wrong TCK, T=15 in TD1, too long.
        "bad-ts": piece(h("3A 00")),
        "bad-tck": piece(h("3B E8 00 00 80 31 FE 45 80 73 C6 01 00 52 42 4B 8C")),
        "t15-in-td1": piece(h("3B 80 0F 0F")),
        "too-long": piece(h("3B") + h("80") * 33),
        # Split across pieces with early deadlines in between.
        "split-with-early-calls": piece(h("3B E8 00")) + EARLY + piece(h("00 80 31 FE 45")) + EARLY
        + piece(h("80 73 C6 01 00 52 42 4B 8D")),
    }
    for name, data in seeds.items():
        write("atr_receiver", name, data)


# ---- pps: T P V1 V2 V3 A N RESPONSE, then the exchange's steps -----------------------
def pps_message(protocol: int, pps1=None, pps2=None, pps3=None) -> bytes:
    pps0 = protocol & 0x0F
    body = b""
    for bit, value in ((0x10, pps1), (0x20, pps2), (0x40, pps3)):
        if value is not None:
            pps0 |= bit
            body += bytes([value])
    message = bytes([0xFF, pps0]) + body
    return message + bytes([lrc(message)])


def pps() -> None:
    # A: 0 T=0 only, 1 T=0+T=1, 2 T=1 TA1 13, 3 TA1 96, 4 T=1 only, 5 specific mode.
    def seed(t, present, v1, v2, v3, a, response, steps=b""):
        return bytes([t, present, v1, v2, v3, a, len(response)]) + response + steps

    t1_13 = pps_message(1, 0x13)
    seeds = {
        # §9.3: T=1 with Fi/Di 13 asked and echoed.
        "t1-fi-di-13-echoed": seed(1, 1, 0x13, 0, 0, 2, t1_13, piece(t1_13)),
        # PPS1 left out in the answer: Fd, Dd (11) stay.
        "pps1-left-out": seed(1, 1, 0x13, 0, 0, 2, pps_message(1), piece(pps_message(1))),
        # T=0 at default parameters, answer byte by byte.
        "t0-default": seed(0, 0, 0, 0, 0, 0, pps_message(0), one_by_one(pps_message(0))),
        # Another protocol answered: rejected.
        "protocol-rejected": seed(1, 0, 0, 0, 0, 1, pps_message(0), piece(pps_message(0))),
        # A PPS2 the card made up: rejected.
        "unasked-pps2": seed(1, 0, 0, 0, 0, 1, pps_message(1, None, 0x01), piece(pps_message(1, None, 0x01))),
        # All of PPS1-3 asked and echoed.
        "pps1-2-3": seed(1, 7, 0x18, 0x02, 0x03, 4, pps_message(1, 0x18, 0x02, 0x03),
                         piece(pps_message(1, 0x18, 0x02, 0x03))),
        # A wrong PCK.
        "bad-pck": seed(1, 1, 0x13, 0, 0, 2, t1_13[:-1] + b"\x00", piece(t1_13[:-1] + b"\x00")),
        # The card in specific mode stays silent: NoResponse.
        "specific-mode-silent": seed(0, 1, 0x96, 0, 0, 5, b"", EARLY + TIMEOUT),
        # A TA1 = 96 card (Fi 512, Di 32) asked for 96.
        "ta1-96": seed(0, 1, 0x96, 0, 0, 3, pps_message(0, 0x96), piece(pps_message(0, 0x96))),
        # The answer cut short, then bytes after the answer.
        "incomplete": seed(1, 1, 0x13, 0, 0, 2, t1_13, piece(t1_13[:2]) + TIMEOUT),
        "trailing": seed(1, 0, 0, 0, 0, 4, pps_message(1), piece(pps_message(1) + h("00 00"))),
        # Not a PPS answer at all (the card went on with T=0).
        "not-pps": seed(0, 0, 0, 0, 0, 0, h("60"), piece(h("60 90 00"))),
    }
    for name, data in seeds.items():
        write("pps", name, data)


def main() -> None:
    t0_host()
    t0_card()
    t1_host()
    t1_card()
    t1_roundtrip()
    atr_receiver()
    pps()


if __name__ == "__main__":
    main()
