"""FITS header cards for rawfits: split into keywords and values, and the size of each HDU's data.

Every header is bounded before it is trusted: it must end (END) within MAX_HEADER_BLOCKS blocks, the
mandatory keywords (BITPIX, NAXIS, NAXISn, PCOUNT, GCOUNT) must be FITS integers in range, and a card
astropy could not parse (text after a quoted string, a control character, a damaged '= ') raises
FitsFormatError when it is read instead of being guessed at. Keywords are read upper-case and bytes
above 0x7F as '?', as astropy reads them. Long strings (CONTINUE) are joined; what only astropy
decodes (BLANK, ASCII tables, random groups, tile compression) is reported, for the caller to decide.
"""
from __future__ import annotations

import codecs
import math
import re
from typing import Any

BLOCK = 2880
CARD = 80
# The widest header we read (a BOSS SPALL HDU) takes 14 blocks; 10,000 blocks (360,000 cards) means
# the END card is missing or the file is not a header at all, and scanning on would only burn time.
MAX_HEADER_BLOCKS = 10_000
MAX_NAXIS = 999  # FITS standard: NAXIS and TFIELDS are at most 999
MAX_TFIELDS = 999
BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class FitsFormatError(Exception):
    """The bytes are not (valid, complete) FITS. Readers add the path."""


class FitsUnsupported(FitsFormatError):
    """Valid FITS this layer does not decode (CONTINUE, BLANK, TNULL, P/Q columns, ...): use astropy.

    A subclass of FitsFormatError so that a caller without the astropy fallback
    still reports it as a clear error instead of crashing."""


# Header text is ASCII; a stray byte above 0x7F reads as '?', as astropy reads it.
_QMARK = "rawfits-qmark"
codecs.register_error(_QMARK, lambda err: ("?" * (err.end - err.start), err.end))
# For reading keywords: upper case (astropy takes 'bzero' for BZERO) and '?' for bytes above 0x7F.
_KEYS = bytes(c - 32 if 97 <= c <= 122 else (63 if c > 127 else c) for c in range(256))
_COMMENTARY = frozenset({"COMMENT ", "HISTORY ", "        "})
# Marks a card that looks like a keyword but lacks the '= ' value indicator: reading it raises.
_DAMAGED = b"\x00"
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?")


def parse_value(raw: bytes) -> Any:
    """A card's value: str, bool, int, float, None (empty), or the raw text when it is no FITS value.

    A string with text after its closing quote (other than a /comment), or with no closing quote,
    raises FitsFormatError: astropy cannot parse such a card, and guessing would misread it."""
    if raw[:1] == _DAMAGED:
        raise FitsFormatError(f"malformed card (no '= ' after the keyword): {raw[1:].decode('ascii', 'replace')!r}")
    text = raw.decode("ascii", _QMARK)
    s = text.lstrip()
    if s.startswith("'"):
        out, i = [], 1
        while i < len(s):
            c = s[i]
            if c == "'":
                if s[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(c)
            i += 1
        else:
            raise FitsFormatError(f"malformed value {text.strip()!r} (no closing quote)")
        rest = s[i + 1 :].strip()
        if rest and not rest.startswith("/"):
            raise FitsFormatError(f"malformed value {text.strip()!r} (text after the closing quote)")
        value = "".join(out).rstrip()
        if not value.isprintable():
            raise FitsFormatError(f"malformed value {text.strip()!r} (a control character)")
        return value
    s = s.split("/", 1)[0].strip()
    if s in ("T", "F"):
        return s == "T"
    if not s:
        return None
    if "_" not in s:
        try:
            return int(s)
        except ValueError:
            pass
    if _FLOAT.fullmatch(s):
        return float(s.replace("D", "E").replace("d", "e"))
    return s


def quoted(raw: bytes | None) -> str:
    """A quoted string card value, fast: TTYPE/TFORM never need the general parser (which takes
    doubled quotes, and raises for a malformed card)."""
    if raw is None:
        return ""
    parts = raw.split(b"'", 2)
    if len(parts) == 3 and not parts[0].strip():
        rest = parts[2].lstrip()
        if not rest or rest[:1] == b"/":  # no doubled quote (rest would start with "'"), no junk after it
            value = parts[1].decode("ascii", _QMARK)
            if value.isprintable():
                return value.strip()
    value = parse_value(raw)
    if not isinstance(value, str):
        raise FitsFormatError(f"malformed value {raw.decode('ascii', _QMARK).strip()!r} (a string was expected)")
    return value.strip()


def parse_header(buf: Any, pos: int, index: int) -> tuple[dict[str, bytes], int, str | None]:
    """(cards, offset after the header, why astropy must read it or None); bounded by MAX_HEADER_BLOCKS.

    Keys come from the block decoded and upper-cased once (astropy takes 'bzero' for BZERO; a byte
    above 0x7F reads as '?'); values stay bytes, parsed only when asked for."""
    cards: dict[str, bytes] = {}
    n = len(buf)
    unsupported = None
    last = ""  # the card a CONTINUE card would extend
    for _ in range(MAX_HEADER_BLOCKS):
        if pos + BLOCK > n:
            raise FitsFormatError(f"truncated: header of HDU {index} ends before its END card (file is {n} bytes)")
        block = bytes(buf[pos : pos + BLOCK])
        text = block.translate(_KEYS).decode("latin-1")
        pos += BLOCK
        for i in range(0, BLOCK, CARD):
            key = text[i : i + 8]
            if key == "END     ":
                if block[i + 8 : i + CARD].strip():  # astropy reads on past such a card: refuse, not guess
                    raise FitsFormatError(f"HDU {index}: malformed END card (text after END)")
                return cards, pos, unsupported
            if text[i + 8 : i + 10] == "= ":
                k = key.rstrip()
                if k not in cards:
                    cards[k] = block[i + 10 : i + CARD]
                    last = k
                else:
                    last = ""
            elif key == "CONTINUE":
                joined = continued(cards.get(last), block[i + 10 : i + CARD]) if last else None
                if joined is None:
                    unsupported = "a CONTINUE card that does not continue a string ending in '&'"
                else:
                    cards[last] = joined
            else:
                last = ""
                if key not in _COMMENTARY:  # e.g. "TTYPE63 } 'FLUX'": a value card whose '= ' was damaged
                    k = key.rstrip()
                    if k not in cards:
                        cards[k] = _DAMAGED + block[i + 8 : i + CARD]
    raise FitsFormatError(f"HDU {index}: no END card in {MAX_HEADER_BLOCKS} header blocks: not a FITS header")


def continued(raw: bytes | None, more: bytes) -> bytes | None:
    """A long-string value ('...&' then CONTINUE '...') joined into one quoted value; None if it is not one.

    DESI primary headers carry such values (DEPVERnn paths); joining them here
    keeps those files on the fast path instead of handing them to astropy."""
    try:
        head = parse_value(raw) if raw is not None else None
        tail = parse_value(more)
    except FitsFormatError:
        return None
    if not (isinstance(head, str) and head.endswith("&") and raw.lstrip().startswith(b"'")
            and isinstance(tail, str) and more.lstrip().startswith(b"'")):
        return None
    return b"'" + (head[:-1] + tail).replace("'", "''").encode("ascii", "replace") + b"'"


def _card_int(cards: dict[str, bytes], key: str, index: int, default: int | None = None) -> int:
    raw = cards.get(key)
    try:
        value = None if raw is None else parse_value(raw)
    except FitsFormatError as err:
        raise FitsFormatError(f"HDU {index}: {key}: {err}") from None
    if value is None:
        if default is None:
            raise FitsFormatError(f"HDU {index}: header has no {key}")
        return default
    if value.__class__ is not int:  # bool is no integer here
        raise FitsFormatError(f"HDU {index}: {key} = {value!r} is not an integer")
    return value


def _card_flag(cards: dict[str, bytes], key: str, index: int) -> Any:
    try:
        return parse_value(cards[key]) if key in cards else None
    except FitsFormatError as err:
        raise FitsFormatError(f"HDU {index}: {key}: {err}") from None


def structure(cards: dict[str, bytes], index: int) -> tuple[int, str | None, str, list[int]]:
    """(data bytes, why astropy must read this HDU or None, XTENSION, [NAXIS1, ...]), every mandatory
    keyword checked first: a size is a non-negative integer, NAXIS at most 999, BITPIX a FITS one."""
    bitpix, naxis = _card_int(cards, "BITPIX", index), _card_int(cards, "NAXIS", index)
    if bitpix not in BITPIX_DTYPES:
        raise FitsFormatError(f"HDU {index}: BITPIX = {bitpix} is not one of 8, 16, 32, 64, -32, -64")
    if not 0 <= naxis <= MAX_NAXIS:
        raise FitsFormatError(f"HDU {index}: NAXIS = {naxis} is outside 0..{MAX_NAXIS}")
    dims = [_card_int(cards, f"NAXIS{k}", index) for k in range(1, naxis + 1)]
    pcount, gcount = _card_int(cards, "PCOUNT", index, 0), _card_int(cards, "GCOUNT", index, 1)
    if (dims and min(dims) < 0) or pcount < 0 or gcount < 0:
        keys = [f"NAXIS{k}" for k in range(1, naxis + 1)] + ["PCOUNT", "GCOUNT"]
        key, value = next((k, v) for k, v in zip(keys, dims + [pcount, gcount]) if v < 0)
        raise FitsFormatError(f"HDU {index}: {key} = {value} is negative")
    xtension = "" if index == 0 else str(_card_flag(cards, "XTENSION", index) or "").strip().upper()
    why = None
    size_dims = dims
    if index == 0 and naxis and dims[0] == 0 and _card_flag(cards, "GROUPS", index) is True:
        why, size_dims = "random groups", dims[1:]
    elif xtension == "BINTABLE":
        if bitpix != 8 or naxis != 2:
            raise FitsFormatError(f"HDU {index}: a binary table needs BITPIX = 8 and NAXIS = 2, not {bitpix} and {naxis}")
        if _card_flag(cards, "ZIMAGE", index) is True:
            why = "tile-compressed image"
    elif xtension == "TABLE":
        why = "ASCII table"
    elif bitpix > 0 and "BLANK" in cards and xtension in ("", "IMAGE"):
        why = "BLANK (null) values in an integer image"
    if naxis == 0:
        return 0, why, xtension, dims
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(size_dims)), why, xtension, dims
