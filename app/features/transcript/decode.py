"""Transcript bytes -> text and the encoding they were in.

Order: documents and media that start like text are refused; a byte-order mark decides
(UTF-8, UTF-16, UTF-32); then strict UTF-8; then UTF-16 without a BOM (ASCII text in it
has a NUL in every other byte); then charset-normalizer for the legacy code pages
(Windows-1252, Latin-1, Cyrillic, CJK, ...). On short texts several Western code pages
decode the same bytes equally well; there Windows-1252 wins, the legacy encoding of English
text on Windows, and the text model reads English.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from app.features.transcript.utterance import TranscriptError

# files that are valid ASCII or UTF-8 at their start yet are documents or media, not text
BINARY_SIGNATURES = {
    b"%PDF-": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (e.g. a Word document)",
    b"{\\rtf": "an RTF document",
    b"GIF8": "a GIF image",
    b"ID3": "an MP3 file",
    b"RIFF": "a RIFF (WAV/AVI) file",
    b"OggS": "an Ogg file",
    b"fLaC": "a FLAC file",
    b"\x1aE\xdf\xa3": "a Matroska/WebM file",
}
# UTF-32 BOMs start with the UTF-16 LE one, so they are tested first.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# BOM-less UTF-16: at least this share of the even (BE) or odd (LE) bytes are NUL
_UTF16_NUL_SHARE = 0.6
# text holds tabs and newlines, not other control characters; more than this share is binary
_MAX_CONTROL_SHARE = 0.01
# charset-normalizer's "chaos" (mess) within this of the best counts as equally good
_CHAOS_TIE = 0.02
_PREFERRED_LEGACY = "cp1252"
# UTF-8's forbidden forms: overlong two-, three- and four-byte sequences and encoded UTF-16
# surrogates (what CESU-8 and Java's "modified UTF-8" write)
_FORBIDDEN_UTF8 = re.compile(
    rb"[\xc0\xc1][\x80-\xbf]|\xe0[\x80-\x9f][\x80-\xbf]|\xed[\xa0-\xbf][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}"
)
# Python codec names as people know them
_DISPLAY_NAMES = {f"cp{n}": f"windows-{n}" for n in range(1250, 1259)} | {"latin_1": "iso-8859-1"}


def decode(data: bytes) -> tuple[str, str]:
    """(text with \\n line ends, encoding name); a ``TranscriptError`` for bytes that are not text."""
    for signature, what in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise TranscriptError(f"transcript is {what}, not text")
    text, encoding = _decode(data)
    if "\x00" in text:
        raise TranscriptError("transcript is not text (it contains NUL characters)")
    controls = sum(unicodedata.category(c) == "Cc" and c not in "\t\n\r\f\v" for c in text)
    if controls > _MAX_CONTROL_SHARE * max(1, len(text)):
        raise TranscriptError("transcript is not text (it is full of control characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def _decode(data: bytes) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                # "from None": the decode error holds the raw bytes.
                return data[len(bom) :].decode(encoding), encoding + " (with byte-order mark)"
            except UnicodeDecodeError:
                raise TranscriptError(
                    f"transcript is not valid {encoding.upper()} text despite its byte-order mark"
                ) from None
    if b"\x00" in data:
        # no text format holds a NUL: BOM-less UTF-16, or not text at all
        utf16 = _bomless_utf16(data)
        if utf16 is None:
            raise TranscriptError("transcript is not text (it contains NUL characters)")
        return utf16
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _FORBIDDEN_UTF8.search(data) and _is_utf8(_FORBIDDEN_UTF8.sub(b"", data)):
        # UTF-8 apart from its forbidden forms: a broken UTF-8 writer, not a legacy code page
        # (a legacy decoding would turn those bytes into mojibake the text model reads)
        raise TranscriptError(
            "transcript is not valid UTF-8 (it holds overlong or encoded-surrogate sequences, "
            "as CESU-8 or Java's modified UTF-8 write); save it as standard UTF-8"
        )
    return _legacy(data)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bomless_utf16(data: bytes) -> tuple[str, str] | None:
    if len(data) < 4 or len(data) % 2:
        return None
    for encoding, nul_at in (("utf-16-le", 1), ("utf-16-be", 0)):
        nuls = data[nul_at::2].count(0)
        if nuls >= _UTF16_NUL_SHARE * (len(data) // 2) and data[1 - nul_at :: 2].count(0) == 0:
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                return None
    return None


def _legacy(data: bytes) -> tuple[str, str]:
    # imported here: only legacy-encoded uploads pay for it
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise TranscriptError("transcript is not text in UTF-8, UTF-16 or any legacy encoding recognised")
    best = min(match.chaos for match in matches)
    tied = [m for m in matches if m.chaos <= best + _CHAOS_TIE]
    chosen = next((m for m in tied if _PREFERRED_LEGACY in m.could_be_from_charset), None)
    if chosen is not None:
        encoding = _PREFERRED_LEGACY
    else:
        chosen = min(matches, key=lambda m: m.chaos)
        encoding = chosen.encoding
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:  # cannot happen for a match; refuse rather than guess
        raise TranscriptError("transcript is not text in any encoding recognised") from None
    return text, _DISPLAY_NAMES.get(encoding, encoding.replace("_", "-"))
