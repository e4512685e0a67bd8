"""Stream a multipart/form-data body straight into the private folder, capped while it
streams.

Starlette's own form parser would first spool every file part to the system temp
directory and only then hand it over; reading the body's chunks through python-multipart's
streaming parser instead puts media bytes only in the request's private folder, keeps
transcripts in memory, and stops at the first byte over a cap (413) without reading the
rest of the body. Transport-free: the caller hands over the body as ``FormBody`` (its
headers and an async iterator of chunks) and raises ``BodyInterrupted`` from that iterator
when its client goes away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaError
from app.upload import suffix_hint

# room for boundaries and part headers on top of the parts' own caps
ENVELOPE_BYTES = 64 << 10
MAX_PARTS = 16
MAX_HEADER_BYTES = 8 << 10
SHORT_FIELD_BYTES = 4 << 10


class BodyInterrupted(Exception):
    """Raised by a body's chunk iterator when the client went away before the body ended."""


@dataclass(frozen=True)
class FormBody:
    """A form as it arrives: the two headers that describe it and its bytes, as they stream in."""

    content_type: str | None
    content_length: str | None
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class FormSpec:
    """Which parts a form may hold and how large each may be."""

    disk_files: dict[str, int]  # field -> byte cap, written to the private folder
    memory_files: dict[str, int]  # field -> byte cap, kept in memory (transcripts)
    text_fields: dict[str, int]  # field -> byte cap, UTF-8 text

    @property
    def max_body_bytes(self) -> int:
        parts = [*self.disk_files.values(), *self.memory_files.values(), *self.text_fields.values()]
        return sum(parts) + ENVELOPE_BYTES

    def cap(self, name: str) -> int:
        return {**self.disk_files, **self.memory_files, **self.text_fields}[name]


@dataclass
class ReceivedFile:
    size: int
    suffix: str  # the client's extension, lower case letters and digits only; the filename goes no further
    content_type: str | None
    path: Path | None = None  # disk files
    data: bytes | None = None  # memory files


@dataclass
class ReceivedForm:
    files: dict[str, ReceivedFile] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    # a live session's video already tracked as it came (consecutive parts from its first
    # tick), so the final answer tracks only the rest of the recorded video
    tracked_video: tuple[object, ...] = ()  # TrackedSegment, opaque here
    # a live session's running estimate: where the final frames of its audio so far are kept
    # between estimates (app/features/growing_audio.py), so each computes only the new ones
    audio_cache: Path | None = None


class _Receiver:
    """python-multipart callbacks -> files in ``folder`` and in-memory values."""

    def __init__(self, folder: Path, spec: FormSpec) -> None:
        self.folder, self.spec = folder, spec
        self.form = ReceivedForm()
        self.seen: set[str] = set()
        self.parts = 0
        self.finished = False
        self._headers: dict[str, str] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name = ""
        self._filename: str | None = None
        self._size = 0
        self._buffer: bytearray | None = None
        self._file: IO[bytes] | None = None
        self._path: Path | None = None

    # headers of a part
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequestError(f"the form has more than {MAX_PARTS} parts")
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > MAX_HEADER_BYTES:
            raise BadRequestError("a part header is too long")

    def on_header_end(self) -> None:
        name = bytes(self._header_name).decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).decode("latin-1").strip()
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequestError("every part needs a `Content-Disposition: form-data; name=...` header")
        name = options[b"name"].decode("latin-1")
        known = {**self.spec.disk_files, **self.spec.memory_files, **self.spec.text_fields}
        if name not in known:
            raise BadRequestError(f"unknown form field {_quoted(name)}; the fields are {', '.join(known)}")
        if name in self.seen:
            raise BadRequestError(f"the form field {name} appears more than once")
        self.seen.add(name)
        self._name, self._size = name, 0
        filename = options.get(b"filename")
        self._filename = filename.decode("utf-8", "replace") if filename is not None else None
        if name in self.spec.disk_files:
            hint = suffix_hint(self._filename)
            self._path = self.folder / (f"{name}.{hint}" if hint else name)
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed in on_part_end or close()
        else:
            self._buffer = bytearray()

    # the part's body
    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        cap = self.spec.cap(self._name)
        if self._size > cap:
            raise _over_cap(self._name, cap)
        if self._file is not None:
            self._file.write(data[start:end])
        elif self._buffer is not None:
            self._buffer += data[start:end]

    def on_part_end(self) -> None:
        name, content_type = self._name, self._headers.get("content-type")
        if self._file is not None:
            self._file.close()
            self._file = None
        if name in self.spec.text_fields:
            try:
                self.form.fields[name] = bytes(self._buffer or b"").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequestError(f"the form field {name} is not UTF-8 text") from exc
        elif self._size == 0 and not self._filename:
            # what browsers send for a file input left empty: not given
            if self._path is not None:
                self._path.unlink(missing_ok=True)
        elif self._size == 0 and name in self.spec.disk_files:
            raise UnsupportedMediaError(f"the {name} upload is empty: no media in it")
        else:
            in_memory = name in self.spec.memory_files
            self.form.files[name] = ReceivedFile(
                size=self._size,
                suffix=suffix_hint(self._filename),
                content_type=content_type,
                path=None if in_memory else self._path,
                data=bytes(self._buffer or b"") if in_memory else None,
            )
        self._buffer, self._path = None, None

    def on_end(self) -> None:
        self.finished = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def callbacks(self) -> dict:
        names = (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
        return {name: getattr(self, name) for name in names}


def _over_cap(name: str, cap: int) -> Exception:
    # a short option field over its cap is an invalid value (400); an upload is too large (413)
    if cap < SHORT_FIELD_BYTES:
        return BadRequestError(f"the {name} field is longer than {cap} bytes")
    return PayloadTooLargeError(f"the {name} part is larger than {cap} bytes")


def _quoted(name: str) -> str:
    # field names are echoed in the error only, shortened and without control characters
    shown = "".join(c if c.isprintable() else "?" for c in name[:40])
    return f"'{shown}'" + ("..." if len(name) > 40 else "")


async def receive_form(body: FormBody, folder: Path, spec: FormSpec) -> ReceivedForm:
    """Parse the body as multipart/form-data into ``folder`` and memory.

    415 for another content type, 413 as soon as the body or a part passes its cap
    (a declared Content-Length over the total is refused before reading anything),
    400 for anything malformed: unknown or repeated fields, a missing boundary, a body
    that ends early.
    """
    content_type, params = parse_options_header(body.content_type)
    if content_type == b"application/x-www-form-urlencoded":
        return await _receive_urlencoded(body, spec)
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaError("send the interview as multipart/form-data (text fields only: urlencoded)")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequestError("the multipart/form-data content type has no boundary")
    _check_declared_length(body, spec.max_body_bytes)

    receiver = _Receiver(folder, spec)
    try:
        parser = MultipartParser(boundary, receiver.callbacks(), max_header_size=MAX_HEADER_BYTES)
        received = 0
        async for chunk in body.chunks:
            received += len(chunk)
            if received > spec.max_body_bytes:
                raise PayloadTooLargeError(f"the request body is larger than {spec.max_body_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise BadRequestError(f"the multipart body is malformed ({type(exc).__name__})") from exc
    except BodyInterrupted as exc:
        raise BadRequestError("the client went away before the upload was complete") from exc
    finally:
        receiver.close()
    if not receiver.finished:
        raise BadRequestError("the multipart body ended before its closing boundary")
    return receiver.form


def _check_declared_length(body: FormBody, cap: int) -> None:
    declared = body.content_length
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLargeError(f"the request body is larger than {cap} bytes")


async def _receive_urlencoded(body: FormBody, spec: FormSpec) -> ReceivedForm:
    """A text-only form (e.g. ``curl -d transcript_text=...``): same fields, same caps, no files."""
    cap = sum(spec.text_fields.values()) + ENVELOPE_BYTES
    _check_declared_length(body, cap)
    data = bytearray()
    try:
        async for chunk in body.chunks:
            data += chunk
            if len(data) > cap:
                raise PayloadTooLargeError(f"the request body is larger than {cap} bytes")
    except BodyInterrupted as exc:
        raise BadRequestError("the client went away before the request was complete") from exc
    try:
        pairs = parse_qsl(data.decode("ascii"), keep_blank_values=True, strict_parsing=bool(data), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError(f"the urlencoded body is malformed ({type(exc).__name__})") from exc
    form = ReceivedForm()
    for name, value in pairs:
        if name in spec.disk_files or name in spec.memory_files:
            raise BadRequestError(f"the {name} field is a file: send it as multipart/form-data")
        if name not in spec.text_fields:
            raise BadRequestError(f"unknown form field {_quoted(name)}; the fields are {', '.join(spec.text_fields)}")
        if name in form.fields:
            raise BadRequestError(f"the form field {name} appears more than once")
        if len(value.encode("utf-8")) > spec.text_fields[name]:
            raise _over_cap(name, spec.text_fields[name])
        form.fields[name] = value
    return form
