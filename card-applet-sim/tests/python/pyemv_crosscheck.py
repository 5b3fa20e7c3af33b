#!/usr/bin/env python3
"""Computes EMV cryptograms with pyemv, for tests/crypto_pyemv.rs to compare.

pyemv (https://pypi.org/project/pyemv/) is the independent implementation that
card-applet-sim's crypto module is checked against. This script only translates:
each case of the request names a pyemv entry point and its inputs; no cryptography
is done here.

Protocol
  stdin   {"cases": [{"id": N, "op": NAME, ...inputs...}, ...]}   (hex strings, ints)
  stdout  {"pyemv_version": V, "results": [{"id": N, "value": HEX}
                                           | {"id": N, "error": TEXT}, ...]}
  exit 3  pyemv cannot be imported (message on stderr)
  exit 2  the request is not understood (message on stderr)
"""

import json
import sys
import warnings

# pyemv drives the `cryptography` package's TripleDES, which now warns that
# two-key and single-key 3DES are deprecated; the warnings are noise here.
warnings.simplefilter("ignore")

try:
    import pyemv
    from pyemv import ac, cvn, kd, mac
except ImportError as error:
    print(f"cannot import pyemv: {error}", file=sys.stderr)
    sys.exit(3)

try:
    from importlib.metadata import version as _dist_version

    PYEMV_VERSION = _dist_version("pyemv")
except Exception:  # noqa: BLE001 - the version is informative only
    PYEMV_VERSION = getattr(pyemv, "__version__", "unknown")


def _b(case, name):
    return bytes.fromhex(case[name])


def _psn(case):
    return f"{case['psn']:02d}"


def _card(case):
    """The pyemv CVN object for the case's version, issuer key, PAN and PSN."""
    classes = {"0A": cvn.VisaCVN10, "12": cvn.VisaCVN18}
    imk = _b(case, "imk")
    return classes[case["cvn"]](
        iss_mk_ac=imk, iss_mk_smi=imk, iss_mk_smc=imk, pan=case["pan"], psn=_psn(case)
    )


def _session_key(card, case):
    """pyemv's common session key for the AC (R = ATC || 00..00)."""
    return kd.derive_common_sk(card.icc_mk_ac, _b(case, "atc") + b"\x00" * 6)


def op_retail_mac(case):
    key = _b(case, "key")
    return mac.mac_iso9797_3(key[:8], key[8:], _b(case, "data"), case["padding"])


def op_option_a(case):
    return kd.derive_icc_mk_a(_b(case, "imk"), case["pan"], _psn(case))


def op_option_b(case):
    return kd.derive_icc_mk_b(_b(case, "imk"), case["pan"], _psn(case))


def op_session_key(case):
    return kd.derive_common_sk(_b(case, "mk"), _b(case, "atc") + b"\x00" * 6)


def op_application_cryptogram(case):
    """AC over arbitrary data under an ICC master key, as each CVN keys and pads it."""
    icc_mk = _b(case, "mk")
    data = _b(case, "data")
    if case["cvn"] == "0A":
        return ac.generate_ac(icc_mk, data, ac.PaddingType.VISA)
    session_key = kd.derive_common_sk(icc_mk, _b(case, "atc") + b"\x00" * 6)
    return ac.generate_ac(session_key, data, ac.PaddingType.EMV)


def op_cvn_ac(case):
    """The whole card computation through pyemv's CVN classes, from named tags."""
    card = _card(case)
    tags = dict(
        tag_9f02=_b(case, "9F02"),
        tag_9f03=_b(case, "9F03"),
        tag_9f1a=_b(case, "9F1A"),
        tag_95=_b(case, "95"),
        tag_5f2a=_b(case, "5F2A"),
        tag_9a=_b(case, "9A"),
        tag_9c=_b(case, "9C"),
        tag_9f37=_b(case, "9F37"),
        tag_82=_b(case, "82"),
        tag_9f36=_b(case, "atc"),
    )
    iad = _b(case, "9F10")
    if case["cvn"] == "0A":
        # VIS IAD: length, derivation key index, CVN, then the 4-byte CVR.
        return card.generate_ac(**tags, cvr=iad[3:7])
    return card.generate_ac(**tags, tag_9f10=iad)


def op_arpc1(case):
    card = _card(case)
    arqc, arc = _b(case, "arqc"), _b(case, "arc")
    if case["cvn"] == "0A":
        return card.generate_arpc(tag_9f26=arqc, arpc_rc=arc)
    # pyemv's VisaCVN18 answers with method 2; method 1 under its session key:
    return ac.generate_arpc_1(_session_key(card, case), arqc, arc)


def op_arpc2(case):
    card = _card(case)
    arqc, csu, pad = _b(case, "arqc"), _b(case, "csu"), _b(case, "pad")
    if case["cvn"] == "12":
        return card.generate_arpc(
            tag_9f26=arqc, tag_9f36=_b(case, "atc"), csu=csu, proprietary_auth_data=pad
        )
    return ac.generate_arpc_2(card.icc_mk_ac, arqc, csu, pad)


OPS = {
    name[len("op_"):]: function
    for name, function in globals().items()
    if name.startswith("op_") and callable(function)
}


def main():
    try:
        request = json.load(sys.stdin)
        cases = request["cases"]
    except (ValueError, KeyError, TypeError) as error:
        print(f"bad request: {error!r}", file=sys.stderr)
        return 2
    results = []
    for case in cases:
        try:
            value = OPS[case["op"]](case).hex().upper()
            results.append({"id": case["id"], "value": value})
        except Exception as error:  # noqa: BLE001 - reported per case to the Rust side
            results.append({"id": case.get("id"), "error": f"{type(error).__name__}: {error}"})
    json.dump({"pyemv_version": PYEMV_VERSION, "results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
