"""A fuzz corpus for the FITS readers, built from the real fixtures, and the harness that runs one case.

Shared by tests/store/test_readers_fuzz.py (CI: a fixed, seeded corpus of ~250 cases) and
bench/fuzz_readers.py (more seeds, the real gzip size cap, figures printed). Each case is the
bytes of a real file changed the way files break or lie: truncation, bit flips, header cards set
to absurd values, HDUs swapped, dropped or duplicated, gzip (whole, truncated, corrupt, a bomb),
special files, and data changes that keep the file valid FITS but make it garbage (a reversed DESI
wavelength grid, a TFORM E -> J, flux x 1e37).

A case passes when, within its time and memory limits:
- `read_any` (or `read_catalog`) returns spectra or raises SpectrumFileError naming the file;
- everything rawfits decodes equals what astropy decodes from the same bytes (the differential);
- the spectra read through rawfits equal those read through the astropy fallback;
- a case marked `must_refuse` is refused.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import re
import resource
import signal
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 2880
REAL = Path(__file__).resolve().parent / "data" / "real"
BASES = {  # short name -> committed real fixture
    "boss": "sdss/spec-4055-55359-0010.fits",
    "sdss1": "sdss/spec-0266-51602-0013.fits",
    "picca": "sdss/spec-3655-55240-0110.fits",
    "desi": "desi/coadd-main-dark-9144.fits",
    "plate": "other_formats/spPlate-4055-55359-0020.fits",
    "image": "other_formats/SDSSJ220248.31+123656.3.fits",
}
ABSURD = ["-50", "-1", "0", "1", "2147483648", "9223372036854775808", "1000000000000000000000000000000",
          "1.5", "'abc'", "''", "T", "NAN"]
STRUCTURAL = ["NAXIS", "NAXIS1", "NAXIS2", "BITPIX", "PCOUNT", "GCOUNT", "TFIELDS"]
# Cards the readers turn into numbers (defect 2: float()/int() on them escaped without the file name).
READER_CARDS = [(0, "PLATEID"), (0, "MJD"), (0, "COEFF0"), (0, "COEFF1"), (1, "TSCAL1"), (1, "TZERO3"),
                (2, "XTRACOLS"), (2, "TSCAL1")]
READER_VALUES = ["'abc'", "NAN", "1E400", "-1", "99999999999999999999"]


@dataclass
class Case:
    name: str
    data: bytes
    suffix: str = ".fits"
    reader: str = "any"  # "any" (read_any) or "catalog" (read_catalog)
    must_refuse: bool = False  # valid FITS whose content is garbage: no reader may return spectra from it


@dataclass
class Outcome:
    name: str
    verdict: str  # read | refused | hang | uncaught | memory | disagree | garbage
    detail: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # differential notes that are not failures


# --------------------------------------------------------------------------- byte surgery

def hdu_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(header start, data start, end incl. padding) of each HDU of a valid FITS file."""
    from inspector.readers import rawfits

    spans, start = [], 0
    for h in rawfits.parse(data):
        end = h.data_offset + -(-h.data_nbytes // BLOCK) * BLOCK
        spans.append((start, h.data_offset, end))
        start = end
    return spans


def card(key: str, value: str) -> bytes:
    return f"{key:<8}= {value:>20}".ljust(80).encode("ascii")


def set_card(data: bytes, hdu: int, key: str, value: str) -> bytes | None:
    """`data` with `key` in HDU `hdu` set to the value text (added in a free slot before END if absent)."""
    start, data_at, _ = hdu_spans(data)[hdu]
    cards = [data[i : i + 80] for i in range(start, data_at, 80)]
    slot = next((i for i, c in enumerate(cards) if c[:8] == key.ljust(8).encode() and c[8:10] == b"= "), None)
    if slot is None:
        end = next(i for i, c in enumerate(cards) if c[:8] == b"END     ")
        if end + 1 >= len(cards):
            return None  # no room in the header's last block
        cards[end + 1] = cards[end]
        slot = end
    cards[slot] = card(key, value)
    return data[:start] + b"".join(cards) + data[data_at:]


def column_index(data: bytes, hdu: int, name: str) -> int | None:
    start, data_at, _ = hdu_spans(data)[hdu]
    m = re.search(rb"TTYPE(\d+) *= '" + re.escape(name.encode()) + rb" *'", data[start:data_at], re.IGNORECASE)
    return int(m.group(1)) if m else None


def flip_bits(data: bytes, rng: np.random.Generator, n: int, lo: int = 0, hi: int | None = None) -> bytes:
    out = bytearray(data)
    for pos in rng.integers(lo, hi or len(data), n):
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out)


def with_astropy(data: bytes, change: Any) -> bytes:
    """The file rewritten by astropy after `change(hdulist)`: valid FITS with changed content."""
    from astropy.io import fits

    with fits.open(io.BytesIO(data)) as h:
        h = fits.HDUList([x.copy() for x in h])
        change(h)
        buf = io.BytesIO()
        h.writeto(buf)
    return buf.getvalue()


def gzip_bomb(unpacked: int, head: bytes) -> bytes:
    """gzip members: a FITS header, then zeros; ~1 KB per MiB unpacked."""
    zeros = gzip.compress(bytes(1 << 20), compresslevel=9)
    return gzip.compress(head) + zeros * -(-unpacked // (1 << 20))


# --------------------------------------------------------------------------- the corpus

def corpus(seed: int = 0, rounds: int = 1, bomb_bytes: int = 64 << 20) -> list[Case]:
    """Every family of damage on every base file; `rounds` repeats the random families with new draws."""
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    for base, rel in BASES.items():
        data = (REAL / rel).read_bytes()
        cases += _structural(base, data, rng, rounds)
        cases += _semantic(base, data)
    cases += _catalog_cases(rng, rounds)
    cases += _special(bomb_bytes, (REAL / BASES["boss"]).read_bytes())
    return cases


def _structural(base: str, data: bytes, rng: np.random.Generator, rounds: int) -> list[Case]:
    spans = hdu_spans(data)
    out = []
    for frac in (0.01, 0.2, 0.5, 0.9):
        out.append(Case(f"{base}/truncate/{frac}", data[: int(len(data) * frac)]))
    out.append(Case(f"{base}/truncate/last-byte", data[:-1]))
    out.append(Case(f"{base}/truncate/at-hdu-boundary", data[: spans[-1][0]] + b"XTENSION= 'BINTABLE'"))
    for r in range(rounds):
        out.append(Case(f"{base}/bitflip/header-{r}", flip_bits(data, rng, 3, 0, spans[min(1, len(spans) - 1)][1])))
        out.append(Case(f"{base}/bitflip/anywhere-{r}", flip_bits(data, rng, 8)))
        for _ in range(2 if r == 0 else 4):
            hdu = int(rng.integers(len(spans)))
            key = STRUCTURAL[int(rng.integers(len(STRUCTURAL)))]
            value = ABSURD[int(rng.integers(len(ABSURD)))]
            changed = set_card(data, hdu, key, value)
            if changed is not None:
                out.append(Case(f"{base}/card/HDU{hdu}:{key}={value}/{r}", changed))
    # the one card of defect 1 (an endless loop before the fix) and its PCOUNT twin
    for key, value in (("NAXIS2", "-50"), ("PCOUNT", str(-(spans[min(2, len(spans) - 1)][1] + BLOCK)))):
        changed = set_card(data, min(2, len(spans) - 1), key, value)
        if changed is not None:
            out.append(Case(f"{base}/card/last-table:{key}={value}", changed))
    for hdu, key in READER_CARDS:
        if hdu < len(spans):
            value = READER_VALUES[int(rng.integers(len(READER_VALUES)))]
            changed = set_card(data, hdu, key, value)
            if changed is not None:
                out.append(Case(f"{base}/reader-card/HDU{hdu}:{key}={value}", changed))
    for key, value in (("BSCALE", "'abc'"), ("BZERO", "NAN"), ("EXTNAME", "12"), ("XTENSION", "'TABLE   '"),
                       ("BLANK", "-1"), ("TNULL1", "0"), ("TDIM1", "'(99999999999999999999,2)'")):
        changed = set_card(data, min(1, len(spans) - 1), key, value)
        if changed is not None:
            out.append(Case(f"{base}/card/HDU1:{key}={value}", changed))
    if len(spans) > 2:
        (a0, _, a1), (b0, _, b1) = spans[1], spans[2]
        out.append(Case(f"{base}/hdus/swap-1-2", data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:]))
        out.append(Case(f"{base}/hdus/drop-1", data[:a0] + data[a1:]))
        out.append(Case(f"{base}/hdus/duplicate-1", data[:a1] + data[a0:a1] + data[a1:]))
    out.append(Case(f"{base}/hdus/primary-only", data[: spans[0][2]]))
    out.append(Case(f"{base}/gzip/whole", gzip.compress(data, 1), ".fits.gz"))
    out.append(Case(f"{base}/gzip/truncated", gzip.compress(data, 1)[: len(data) // 5], ".fits.gz"))
    out.append(Case(f"{base}/gzip/bitflip", flip_bits(gzip.compress(data, 1), rng, 2, 100), ".fits.gz"))
    return out


def _semantic(base: str, data: bytes) -> list[Case]:
    """Valid FITS, garbage content: astropy reads the same garbage, so the readers must judge."""
    out = []
    if base in ("boss", "sdss1", "picca"):
        k = column_index(data, 1, "flux")
        out.append(Case(f"{base}/garbage/TFORM{k}-flux-E-to-J", set_card(data, 1, f"TFORM{k}", "'J'"),
                        must_refuse=True))

        def times_1e37(h: Any) -> None:
            name = next(c for c in h[1].columns.names if c.lower() == "flux")
            with np.errstate(over="ignore"):
                h[1].data[name] = h[1].data[name] * np.float32(1e37) + np.float32(1e37)
        out.append(Case(f"{base}/garbage/flux-x1e37", with_astropy(data, times_1e37), must_refuse=True))
    if base == "desi":
        def reverse_b(h: Any) -> None:
            h["B_WAVELENGTH"].data = h["B_WAVELENGTH"].data[::-1].copy()
        out.append(Case("desi/garbage/reversed-B_WAVELENGTH", with_astropy(data, reverse_b), must_refuse=True))

        def int_flux(h: Any) -> None:
            h["R_FLUX"].data = h["R_FLUX"].data.view(np.int32).copy()
        out.append(Case("desi/garbage/R_FLUX-bits-as-int32", with_astropy(data, int_flux), must_refuse=True))
    return out


def _catalog_bytes() -> bytes:
    from astropy.io import fits

    n = 50
    rng = np.random.default_rng(7)
    cols = [fits.Column("SDSS_NAME", "18A", array=np.array([f"J{i:017d}" for i in range(n)])),
            fits.Column("RA", "D", array=rng.uniform(0, 360, n)), fits.Column("DEC", "D", array=rng.uniform(-10, 60, n)),
            fits.Column("PLATE", "J", array=np.full(n, 4055)), fits.Column("MJD", "J", array=np.full(n, 55359)),
            fits.Column("FIBERID", "J", array=np.arange(1, n + 1)), fits.Column("Z", "D", array=rng.uniform(0, 4, n)),
            fits.Column("ZWARNING", "J", array=np.zeros(n, int)), fits.Column("Z_PCA", "E", array=rng.uniform(0, 4, n)),
            fits.Column("IS_QSO_FINAL", "I", array=np.ones(n, int))]
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(buf)
    return buf.getvalue()


def _catalog_cases(rng: np.random.Generator, rounds: int) -> list[Case]:
    data = _catalog_bytes()
    out = [Case("catalog/intact", data, reader="catalog"),
           Case("catalog/truncate/0.6", data[: int(len(data) * 0.6)], reader="catalog")]
    for r in range(rounds):
        out.append(Case(f"catalog/bitflip/{r}", flip_bits(data, rng, 4, 2880, 5760), reader="catalog"))
        for key, value in (("NAXIS2", "-50"), ("NAXIS2", "100000000000000"), ("NAXIS1", "0"), ("TFIELDS", "1000"),
                           ("TFORM2", "'1PD(10)'"), ("TFORM7", "'0J'"), ("TSCAL7", "'abc'"), ("TZERO5", "2147483648")):
            out.append(Case(f"catalog/card/{key}={value}/{r}", set_card(data, 1, key, value), reader="catalog"))
    return out


def _special(bomb_bytes: int, spec: bytes) -> list[Case]:
    head = spec[: hdu_spans(spec)[1][1]]
    return [
        Case("special/empty", b""),
        Case("special/zeros", bytes(BLOCK)),
        Case("special/text", b"plate,mjd,fiber\n4055,55359,10\n" * 200),
        Case("special/header-without-END", spec[:BLOCK].replace(b"END     ", b"COMMENT ") + b" " * BLOCK * 50),
        Case("special/simple-only", card("SIMPLE", "T") + b" " * (BLOCK - 80)),
        Case("special/gzip-empty", gzip.compress(b""), ".fits.gz"),
        Case("special/gzip-not-fits", gzip.compress(b"hello" * 1000), ".fits.gz"),
        Case("special/gzip-bomb", gzip_bomb(bomb_bytes, head), ".fits.gz"),
        Case("special/gzip-two-members", gzip.compress(spec[:100_000]) + gzip.compress(spec[100_000:]), ".fits.gz"),
        Case("special/zlib-not-gzip", b"\x1f\x8b" + zlib.compress(spec)[2:], ".fits.gz"),
    ]


# --------------------------------------------------------------------------- limits

class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case (a BaseException, so no `except Exception` in a reader eats it)."""


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def limits(seconds: float, extra_memory: int) -> Iterator[None]:
    """At most `seconds` of wall time (SIGALRM) and `extra_memory` more address space (RLIMIT_AS) than now."""
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    use_as = os.path.exists("/proc/self/statm")
    if use_as:
        cap = _vm_bytes() + extra_memory
        hard = old_as[1]
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if use_as:
            resource.setrlimit(resource.RLIMIT_AS, old_as)
        signal.signal(signal.SIGALRM, old_handler)


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


# --------------------------------------------------------------------------- one case

def warm_up(workdir: Path) -> None:
    """Read an intact file of each kind once, outside any limit: the first pandas DataFrame reserves
    ~1 GB of address space for good, which a case must not be charged for."""
    for case in (Case("warm/catalog", _catalog_bytes(), reader="catalog"),
                 Case("warm/desi", (REAL / BASES["desi"]).read_bytes()),
                 Case("warm/boss", (REAL / BASES["boss"]).read_bytes())):
        out = run_case(case, workdir, seconds=120, extra_memory=1 << 40)
        if out.verdict != "read":
            raise RuntimeError(f"intact file not read: {out}")


def run_case(case: Case, workdir: Path, seconds: float = 10.0, extra_memory: int = 1 << 30) -> Outcome:
    """Write the case, read it with the product readers and with astropy, and judge."""
    path = workdir / (re.sub(r"[^A-Za-z0-9_.=-]+", "_", case.name)[:120] + case.suffix)
    path.write_bytes(case.data)
    out = Outcome(case.name, "read")
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), limits(seconds, extra_memory):
            warnings.simplefilter("ignore")
            _judge(case, path, out)
    except CaseTimeout:
        out.verdict, out.detail = "hang", f"still running after {seconds} s"
    except MemoryError:
        out.verdict, out.detail = "memory", f"needed more than {extra_memory >> 20} MB"
    except Exception as err:  # noqa: BLE001 - the point: anything but SpectrumFileError is a failure
        out.verdict, out.detail = "uncaught", f"{type(err).__name__}: {err}"
    out.seconds = time.perf_counter() - t0
    path.unlink(missing_ok=True)
    return out


def _judge(case: Case, path: Path, out: Outcome) -> None:
    from inspector.readers import SpectrumFileError, read_any, read_catalog

    read = read_catalog if case.reader == "catalog" else read_any
    try:
        result = read(path)
    except SpectrumFileError as err:
        if err.path != str(path) or not str(err).startswith(f"{path}: ") or not err.problem.strip():
            out.verdict, out.detail = "uncaught", f"SpectrumFileError without the file name: {err}"
            return
        out.verdict, out.detail = "refused", err.problem
    else:
        if case.must_refuse:
            out.verdict, out.detail = "garbage", f"accepted: {len(result)} spectra/rows from a garbage file"
            return
    problem = differential(path, out)
    if problem is None and out.verdict == "read" and case.reader == "any":
        problem = _same_spectra_through_astropy(path, result, out)
    if problem:
        out.verdict, out.detail = "disagree", problem


def differential(path: Path, out: Outcome) -> str | None:
    """What rawfits decodes from the file against astropy on the same bytes; a mismatch is returned.

    Run whenever rawfits accepts the file's structure: where it refuses there is nothing to be wrong
    about (and astropy itself loops on some of those headers, e.g. NAXIS2 = -50). Each HDU goes to
    astropy on its own (behind a minimal primary header), so that a card astropy cannot parse in one
    HDU (it refuses a whole file for a stray byte in EXTEND) leaves the others comparable; an HDU
    astropy cannot open is noted as unverified, not counted as agreement."""
    from inspector.readers import rawfits

    buf: Any = path.read_bytes()
    try:
        if buf[:2] == b"\x1f\x8b":
            if not hasattr(rawfits, "gunzip"):  # a version without the size-capped gunzip (bench on old code)
                return None
            buf = rawfits.gunzip(buf)
        mine = rawfits.parse(buf)
    except rawfits.FitsFormatError:
        return None  # refused (or handed to astropy entirely): no rawfits values to check
    start = 0
    for h in mine:
        end = h.data_offset + -(-h.data_nbytes // BLOCK) * BLOCK
        problem = _compare_alone(h, bytes(buf[start:end]), out)
        start = end
        if problem:
            return f"HDU {h.index}: {problem}"
    return None


_PRIMARY = b"".join([card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T"),
                     b"END".ljust(80)]).ljust(BLOCK)


def _compare_alone(h: Any, hdu_bytes: bytes, out: Outcome) -> str | None:
    from astropy.io import fits

    try:
        ref = fits.open(io.BytesIO(hdu_bytes if h.index == 0 else _PRIMARY + hdu_bytes), memmap=False)
        r = ref[0 if h.index == 0 else 1]
        r.header.tostring()  # every card parsed now: an unparsable one makes the HDU unverifiable
    except Exception as err:  # noqa: BLE001
        out.notes.append(f"unverified: astropy cannot open HDU {h.index} ({type(err).__name__}: {err})")
        return None
    return _compare_hdu(h, r, out)  # rawfits' own exceptions must propagate: they are failures


def _compare_hdu(h: Any, r: Any, out: Outcome) -> str | None:
    from astropy.io import fits

    from inspector.readers import rawfits

    if isinstance(r, fits.BinTableHDU) != h.is_table:
        return f"kind: rawfits table={h.is_table}, astropy {type(r).__name__}"
    if not isinstance(r, (fits.BinTableHDU, fits.PrimaryHDU, fits.ImageHDU)):
        return None
    if h.is_table:
        try:
            names = h.column_names
        except rawfits.FitsFormatError as err:
            out.notes.append(f"HDU {h.index}: rawfits refuses the columns ({err})")
            return None
        ref_names = _astropy(lambda: list(r.columns.names), out, f"HDU {h.index} columns")
        if ref_names is None:
            return None
        ref_names = [n or f"COL{k}" for k, n in enumerate(ref_names, 1)]  # rawfits names an unnamed column so
        if [n.upper() for n in names] != [n.upper() for n in ref_names]:
            diff = next(k for k, (x, y) in enumerate(zip(names + [None], ref_names + [None])) if x != y)
            return f"column names differ at {diff}: {names[diff:diff + 2]} vs astropy {ref_names[diff:diff + 2]}"
        for k, name in enumerate(names):
            problem = _compare(lambda name=name: h.values(name), lambda k=k: r.data.field(k), out,
                               f"HDU {h.index} column {name}")
            if problem:
                return problem
        return None
    if not h.is_image:
        size = _astropy(lambda: 0 if r.data is None else r.data.size, out, f"HDU {h.index} data")
        return "rawfits sees no image, astropy does" if size else None
    return _compare(h.image, lambda: r.data, out, f"HDU {h.index} image")


def _astropy(get: Any, out: Outcome, what: str) -> Any:
    """astropy's answer, or None (noted as unverified) when astropy itself fails."""
    try:
        return get()
    except Exception as err:  # noqa: BLE001
        out.notes.append(f"unverified: astropy fails on {what} ({type(err).__name__}: {err})")
        return None


def _compare(mine: Any, theirs: Any, out: Outcome, what: str) -> str | None:
    from inspector.readers import rawfits

    try:
        a = mine()
    except rawfits.FitsFormatError as err:
        out.notes.append(f"{what}: rawfits refuses ({err})")
        return None
    b = _astropy(lambda: np.asarray(theirs()), out, what)
    if b is None:
        return None
    if b.dtype.kind == "S":  # decoded as rawfits' `strings` promises: ASCII, trailing NULs and blanks gone
        b = np.char.decode(np.char.rstrip(b, b"\x00"), "ascii", "replace")
    if b.dtype.kind == "U":
        b = np.char.rstrip(b)
    if a.shape != b.shape:
        return f"{what}: shape {a.shape} vs astropy {b.shape}"
    if a.dtype.kind != b.dtype.kind and not (a.size == 0 and b.size == 0):
        return f"{what}: dtype {a.dtype} vs astropy {b.dtype}"
    if not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
        return f"{what}: values differ from astropy"
    return None


def _same_spectra_through_astropy(path: Path, spectra: Any, out: Outcome) -> str | None:
    """The readers on astropy-backed HDUs (the fallback path) must give the same spectra."""
    from inspector.readers import SpectrumFileError, rawfits

    try:
        from inspector.readers import _dispatch, astropy_hdus
    except ImportError:  # a version without the astropy fallback (bench/fuzz_readers.py on old code)
        out.notes.append("no astropy fallback path to compare with")
        return None
    try:
        ref = _dispatch(path, astropy_hdus.open_hdus(path))
    except (SpectrumFileError, rawfits.FitsFormatError) as err:
        # astropy refusing what rawfits reads is not garbage by itself: the HDU-by-HDU comparison above
        # has already checked every value rawfits decodes against astropy's
        out.notes.append(f"read through rawfits, refused through astropy: {err}")
        return None
    if len(ref) != len(spectra):
        return f"{len(spectra)} spectra through rawfits, {len(ref)} through astropy"
    for s, t in zip(spectra, ref):
        for attr in ("wave", "flux", "ivar"):
            if not np.array_equal(getattr(s, attr), getattr(t, attr), equal_nan=True):
                return f"{s.source}: {attr} differs between rawfits and astropy"
        for attr in ("z", "plate", "mjd", "fiberid", "targetid", "spec_class"):
            x, y = getattr(s, attr), getattr(t, attr)
            if x != y and not (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)):
                return f"{s.source}: {attr} {x!r} through rawfits, {y!r} through astropy"
    return None
