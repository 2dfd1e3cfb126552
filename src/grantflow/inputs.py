r"""Read bulk input files (CSV, JSON, JSONL) as a stream of `BulkItem` or `RowError`.

Each row names one project (column ``project_id`` or ``id``); every other column is
evidence for the transition. ``evidence.``-prefixed columns have the prefix stripped, and
dots after it nest (``evidence.contract.amount`` sets ``{"contract": {"amount": ...}}``).
A JSON ``evidence`` object is merged into the evidence too.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sign.csv"
>>> _ = path.write_text("project_id,reason\np-1,on time\np-1,again\n", encoding="utf-8")
>>> for row in BulkReader(path):
...     print(row.row, type(row).__name__, getattr(row, "reason", "ok"))
2 BulkItem ok
3 RowError duplicate project id p-1 (first on row 2)

Rows are numbered as a spreadsheet shows them: in CSV the header is row 1, so the first
data row is row 2; in JSONL a row is its line number; in a JSON array it is the element's
1-based position. Files are streamed: only the current row (and the set of project ids
seen, to catch duplicates) is held in memory.

A problem with one row is yielded as a `RowError` and reading goes on; a problem with the
whole file (unreadable, an encoding that cannot be decoded, a CSV without an id column, a
JSON document that is not an array) raises `InvalidInput` before any row is yielded.

Limits: a row (a CSV or JSONL line, a JSON array element) longer than `MAX_ROW_CHARS`
characters, a CSV field longer than Python's ``csv.field_size_limit()`` (131,072), JSON
nested deeper than Python can decode, or a number of more than 4,300 digits is a
`RowError` for that row only, and the rows after it are read; a CSV header with more than
`MAX_COLUMNS` columns, or one longer than `MAX_ROW_CHARS`, refuses the file. Evidence
must then pass `validate_json` (nesting at most 32 deep, strings at most 100,000
characters and encodable as UTF-8). Every check is linear in the size of the row.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

from grantflow._canonical import validate_json
from grantflow.bulk import BulkItem
from grantflow.errors import InvalidInput

__all__ = [
    "BulkReader",
    "FileFormat",
    "MAX_COLUMNS",
    "MAX_ROW_CHARS",
    "RowError",
    "detect_encoding",
    "read_items",
]

#: The input formats `BulkReader` understands.
FileFormat = Literal["csv", "json", "jsonl"]

#: Longest row (CSV or JSONL line, JSON array element) read; a longer one is a `RowError`.
MAX_ROW_CHARS = 8 * 1024 * 1024
#: Most columns a CSV header may have.
MAX_COLUMNS = 4096

_ID_COLUMNS = ("project_id", "id")
_PREFIX = "evidence."
_CHUNK = 64 * 1024
_CONVINCING = 8
#: The longest project id (as `grantflow.models.Identifier` allows).
_MAX_ID = 128
_SUFFIXES: dict[str, FileFormat] = {".csv": "csv", ".json": "json", ".jsonl": "jsonl"}
_SUFFIXES[".ndjson"] = "jsonl"


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row of a bulk file: where it is, why it was refused, and the id if known.

    `field` names the column or evidence path at fault (``None`` for a malformed row).
    """

    row: int
    reason: str
    field: str | None = None
    project_id: str | None = None

    def to_error(self) -> InvalidInput:
        """Return the problem as an `InvalidInput` exception (not raised)."""
        return InvalidInput(
            f"row {self.row}: {self.reason}",
            field=self.field,
            row=self.row,
            project_id=self.project_id,
        )


class BulkReader:
    """Iterate over a bulk file's rows as `BulkItem` or `RowError`, streaming.

    Args:
        path: the file to read.
        fmt: ``"csv"``, ``"json"`` or ``"jsonl"``; guessed from the file suffix when omitted
            (``.csv``, ``.json``, ``.jsonl`` or ``.ndjson``).
        encoding: the text encoding; detected when omitted (see `detect_encoding`).

    After construction, `encoding` holds the encoding used and `warnings` any notes the
    caller should show (such as a fallback to GB18030). Iterating twice reads the file twice.

    Raises:
        InvalidInput: the file is missing, its format unknown or its encoding undecodable.
    """

    def __init__(
        self, path: str | Path, *, fmt: FileFormat | None = None, encoding: str | None = None
    ) -> None:
        self.path = Path(path)
        self.format: FileFormat = fmt or _guess_format(self.path)
        if not self.path.is_file():
            raise InvalidInput(f"{self.path}: no such file", field="path")
        self.warnings: list[str] = []
        if encoding is None:
            encoding, warning = detect_encoding(self.path)
            if warning:
                self.warnings.append(warning)
        self.encoding = encoding

    def __repr__(self) -> str:
        return f"BulkReader({str(self.path)!r}, fmt={self.format!r}, encoding={self.encoding!r})"

    def __iter__(self) -> Iterator[BulkItem | RowError]:
        seen: dict[str, int] = {}
        with self.path.open(encoding=self.encoding, newline="") as stream:
            for row, value in _ROWS[self.format](stream, self.path):
                yield _dedupe(_to_item(row, value), seen)


def read_items(
    path: str | Path, *, fmt: FileFormat | None = None, encoding: str | None = None
) -> Iterator[BulkItem | RowError]:
    """Yield the rows of a bulk file as `BulkItem` or `RowError` (see `BulkReader`)."""
    return iter(BulkReader(path, fmt=fmt, encoding=encoding))


# -- encodings -------------------------------------------------------------------------


def detect_encoding(path: str | Path) -> tuple[str, str | None]:
    """Return the encoding to read `path` with, and a warning to show (or ``None``).

    UTF-8 (with or without a byte-order mark) is tried first, strictly. A file that is not
    UTF-8 is read as GB18030 (a superset of GBK and GB2312) if it decodes as such, with a
    warning saying so. A file that looked like UTF-8 (valid multi-byte characters before
    the bad byte: at least 8 non-ASCII characters) is refused instead of being
    guessed at, as is a UTF-16 file.

    Raises:
        InvalidInput: neither encoding decodes the file; the message gives the byte offset
            and the line of the first bad byte.
    """
    path = Path(path)
    with path.open("rb") as raw:
        head = raw.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InvalidInput(
            f"{path}: the file is UTF-16 (it starts with a UTF-16 byte-order mark); "
            "save it as UTF-8",
            field="encoding",
        )
    utf8 = _first_bad_byte(path, "utf-8")
    if utf8 is None:
        return "utf-8-sig", None
    offset, saw_multibyte = utf8
    line = _line_of(path, offset)
    if saw_multibyte:
        raise InvalidInput(
            f"{path}: invalid UTF-8 at byte {offset} (line {line}) in a file that is "
            "otherwise UTF-8; fix the file or pass its encoding",
            field="encoding",
            row=line,
        )
    gb = _first_bad_byte(path, "gb18030")
    if gb is None:
        return "gb18030", (
            f"{path}: not UTF-8 (first non-UTF-8 byte at offset {offset}, line {line}); "
            "read as GB18030/GBK"
        )
    gb_offset = gb[0]
    raise InvalidInput(
        f"{path}: cannot decode the file: not UTF-8 (bad byte at offset {offset}, line {line}) "
        f"and not GB18030/GBK (bad byte at offset {gb_offset}, line {_line_of(path, gb_offset)})",
        field="encoding",
        row=line,
    )


def _first_bad_byte(path: Path, encoding: str) -> tuple[int, bool] | None:
    """Return (offset of the first undecodable byte, looked like text in `encoding`), or None.

    "Looked like" means at least `_CONVINCING` non-ASCII characters decoded before the bad
    byte: a GBK file passes for UTF-8 for a character or two by chance, never for many.
    """
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    fed = 0
    non_ascii = 0
    with path.open("rb") as raw:
        while True:
            chunk = raw.read(_CHUNK)
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                before = bytes(exc.object[: exc.start]).decode(encoding, "ignore")
                non_ascii += _count_non_ascii(before)
                return fed - pending + exc.start, non_ascii >= _CONVINCING
            non_ascii += _count_non_ascii(text)
            fed += len(chunk)
            if not chunk:
                return None


def _count_non_ascii(text: str) -> int:
    return 0 if text.isascii() else sum(1 for ch in text if ord(ch) > 127)


def _line_of(path: Path, offset: int) -> int:
    """Return the 1-based line number holding byte `offset`."""
    lines = 1
    done = 0
    with path.open("rb") as raw:
        while done < offset:
            chunk = raw.read(min(_CHUNK, offset - done))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            done += len(chunk)
    return lines


# -- formats ---------------------------------------------------------------------------

#: (row number, the parsed row or a RowError) as each format's reader yields them.
_Parsed = tuple[int, Any]


def _guess_format(path: Path) -> FileFormat:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
            "use .csv, .json or .jsonl, or name the format",
            field="format",
        )
    return fmt


def _csv_rows(stream: TextIO, path: Path) -> Iterator[_Parsed]:
    lines = _Lines(stream)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInput(f"{path}: the header row is malformed: {exc}", row=1) from exc
    if lines.take_oversize():
        raise InvalidInput(
            f"{path}: the header row is longer than {MAX_ROW_CHARS} characters", row=1
        )
    if header is None:
        return
    columns = _check_header(header, path)
    row = 1
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            lines.take_oversize()
            yield row, RowError(row, f"malformed CSV: {exc}")
            continue
        if lines.take_oversize():
            yield row, RowError(row, f"row longer than {MAX_ROW_CHARS} characters")
            continue
        if not cells:
            continue
        if len(cells) != len(columns):
            yield row, RowError(row, f"has {len(cells)} fields; the header has {len(columns)}")
            continue
        yield row, {name: cell for name, cell in zip(columns, cells, strict=True) if cell != ""}


class _Lines:
    """The lines of a text stream, each read at most `MAX_ROW_CHARS` characters at a time.

    A longer line is skipped (the csv reader sees an empty line in its place) and noted,
    so the caller reports that row instead of holding a line of any length in memory.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._oversize = False

    def __iter__(self) -> Iterator[str]:
        while line := self._stream.readline(MAX_ROW_CHARS + 1):
            if len(line) > MAX_ROW_CHARS:
                _drain_line(self._stream)
                self._oversize = True
                yield "\n"
            else:
                yield line

    def take_oversize(self) -> bool:
        """Return whether a line was skipped since the last call."""
        found, self._oversize = self._oversize, False
        return found


def _drain_line(stream: TextIO) -> None:
    """Read the rest of the current line."""
    while (rest := stream.readline(_CHUNK)) and not rest.endswith(("\n", "\r")):
        pass


def _check_header(header: list[str], path: Path) -> list[str]:
    if len(header) > MAX_COLUMNS:
        raise InvalidInput(
            f"{path}: the header has {len(header)} columns; at most {MAX_COLUMNS} are read",
            field="header",
            row=1,
        )
    columns = [name.strip() for name in header]
    if not any(name in _ID_COLUMNS for name in columns):
        raise InvalidInput(
            f"{path}: the header has no project_id or id column (columns: {_shown(columns)})",
            field="project_id",
            row=1,
        )
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in columns:
        (repeated if name in seen else seen).add(name)
    dupes = sorted(repeated)
    if dupes or "" in seen:
        raise InvalidInput(
            f"{path}: the header has duplicate or empty column names: {_shown(dupes or [''])}",
            field="header",
            row=1,
        )
    return columns


def _shown(names: list[str]) -> str:
    """Column names for an error message: escaped, and at most ten of them."""
    shown = ", ".join(ascii(name) if not name.isprintable() else repr(name) for name in names[:10])
    return f"[{shown}{', ...' if len(names) > 10 else ''}]"


def _jsonl_rows(stream: TextIO, path: Path) -> Iterator[_Parsed]:
    decoder = _decoder()
    row = 0
    while line := stream.readline(MAX_ROW_CHARS + 1):
        row += 1
        if len(line) > MAX_ROW_CHARS:
            _drain_line(stream)
            yield row, RowError(row, f"row longer than {MAX_ROW_CHARS} characters")
            continue
        text = line.strip()
        if not text:
            continue
        try:
            yield row, decoder.decode(text)
        except RecursionError:
            yield row, RowError(row, "JSON nested too deeply")
        except ValueError as exc:  # malformed, or a number longer than 4,300 digits
            yield row, RowError(row, f"malformed JSON: {exc}")


def _json_rows(stream: TextIO, path: Path) -> Iterator[_Parsed]:
    """Yield the elements of a top-level JSON array, one at a time."""
    buffer = _TextBuffer(stream)
    if not buffer.skip_space() or buffer.peek() != "[":
        raise InvalidInput(f"{path}: a JSON bulk file must be an array of objects", row=1)
    buffer.advance(1)
    decoder = _decoder()
    row = 0
    expect_comma = False
    while buffer.skip_space():
        if buffer.peek() == "]":
            return
        if expect_comma:
            if buffer.peek() != ",":
                yield row + 1, RowError(row + 1, "malformed JSON: expected ',' or ']'")
                return
            buffer.advance(1)
            buffer.skip_space()
        row += 1
        parsed = buffer.decode(decoder)
        if isinstance(parsed, _Refused):
            # Well-formed as far as we know, but not decodable: skip just this element.
            yield row, RowError(row, parsed.reason)
            if not buffer.skip_value():
                yield row + 1, RowError(row + 1, "malformed JSON: the array is not closed")
                return
        elif isinstance(parsed, str):
            yield row, RowError(row, f"malformed JSON: {parsed}; the rest of the file was skipped")
            return
        else:
            yield row, parsed[0]
        expect_comma = True
    yield row + 1, RowError(row + 1, "malformed JSON: the array is not closed")


@dataclass(frozen=True, slots=True)
class _Refused:
    """An array element the decoder could not take (too deep, a number too long)."""

    reason: str


class _TextBuffer:
    """A sliding window over a text stream, refilled as JSON elements need more text."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._text = ""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._stream.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._text = self._text[self._pos :] + chunk
        self._pos = 0
        return True

    def skip_space(self) -> bool:
        """Move past white space; return whether any text is left."""
        while True:
            while self._pos < len(self._text) and self._text[self._pos].isspace():
                self._pos += 1
            if self._pos < len(self._text) or not self._fill():
                return self._pos < len(self._text)

    def peek(self) -> str:
        return self._text[self._pos]

    def advance(self, count: int) -> None:
        self._pos += count

    def skip_value(self) -> bool:
        """Move past one well-formed JSON value without decoding it.

        Returns False when the text ends first or the value is longer than
        `MAX_ROW_CHARS`: the place in the array is lost then. Linear in the value's size.
        """
        depth = 0
        i = self._pos
        while True:
            match = _STRUCTURE.search(self._text, i)
            if match is None:
                i = len(self._text)
            elif match.group() == '"':
                end = _skip_string(self._text, match.end())
                if end is not None:
                    i = end
                    if depth == 0:
                        self._pos = i
                        return True
                    continue
                i = match.start()  # the string goes on past the window: read more
            elif match.group() in "[{":
                depth += 1
                i = match.end()
                continue
            elif depth == 0:  # a "]" or "," ends a top-level scalar
                self._pos = match.start()
                return True
            elif match.group() == ",":
                i = match.end()
                continue
            else:
                depth -= 1
                i = match.end()
                if depth == 0:
                    self._pos = i
                    return True
                continue
            offset = i - self._pos
            if offset > MAX_ROW_CHARS or not self._fill():
                return False
            i = self._pos + offset

    def decode(self, decoder: json.JSONDecoder) -> tuple[Any] | _Refused | str:
        """Decode one value (a 1-tuple), say why it was refused, or why it is malformed."""
        while True:
            try:
                value, end = decoder.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as exc:
                too_big = len(self._text) - self._pos > MAX_ROW_CHARS
                if too_big or not self._fill():
                    return f"row longer than {MAX_ROW_CHARS} characters" if too_big else str(exc)
                continue
            except RecursionError:
                return _Refused("JSON nested too deeply")
            except ValueError as exc:  # a number longer than 4,300 digits
                return _Refused(f"malformed JSON: {exc}")
            # A value cut off by the window's end (a number, say) is only trusted once
            # the delimiter after it is in view.
            if end < len(self._text) or self._eof or not self._fill():
                self._pos = end
                return (value,)


_STRUCTURE = re.compile(r'["\[\]{},]')


def _skip_string(text: str, i: int) -> int | None:
    """Return the index after the string whose opening quote is before `i`, if it ends."""
    while True:
        quote = text.find('"', i)
        if quote < 0:
            return None
        backslashes = 0
        while text[quote - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return quote + 1
        i = quote + 1


def _decoder() -> json.JSONDecoder:
    # NaN and Infinity become non-finite decimals, which the evidence check refuses
    # row by row (raising here would lose the place in a JSON array).
    return json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)


_ROWS = {"csv": _csv_rows, "json": _json_rows, "jsonl": _jsonl_rows}


# -- rows to items ---------------------------------------------------------------------


def _to_item(row: int, value: Any) -> BulkItem | RowError:
    if isinstance(value, RowError):
        return value
    if not isinstance(value, Mapping):
        return RowError(row, f"a row must be an object, not {_type_name(value)}")
    try:
        project_id = _project_id(row, value)
        evidence = _evidence(row, value)
        validate_json(evidence, field="evidence", row=row)
    except InvalidInput as exc:
        pid = value.get("project_id", value.get("id"))
        return RowError(row, exc.message, exc.field, pid if isinstance(pid, str) else None)
    return BulkItem(project_id=project_id, evidence=evidence, row=row)


def _project_id(row: int, value: Mapping[str, Any]) -> str:
    given = [name for name in _ID_COLUMNS if name in value]
    if not given:
        raise InvalidInput("missing project id (project_id or id)", field="project_id", row=row)
    if len(given) > 1:
        raise InvalidInput("give project_id or id, not both", field="project_id", row=row)
    field = given[0]
    pid = value[field]
    if not isinstance(pid, str):
        raise InvalidInput(f"{field} must be a string, not {_type_name(pid)}", field=field, row=row)
    if pid != pid.strip():
        raise InvalidInput(f"{field} has leading or trailing white space", field=field, row=row)
    if not 0 < len(pid) <= _MAX_ID:
        raise InvalidInput(f"{field} must be 1-{_MAX_ID} characters", field=field, row=row)
    if not pid.isprintable():
        raise InvalidInput(f"{field} must not contain control characters", field=field, row=row)
    return pid


def _evidence(row: int, value: Mapping[str, Any]) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    for key, item in value.items():
        if key in _ID_COLUMNS:
            continue
        if key == "evidence" and isinstance(item, Mapping):
            for sub, sub_item in item.items():
                _put(evidence, [str(sub)], sub_item, row)
        elif key.startswith(_PREFIX):
            _put(evidence, key[len(_PREFIX) :].split("."), item, row)
        else:
            _put(evidence, [key], item, row)
    return evidence


def _put(target: dict[str, Any], path: list[str], item: Any, row: int) -> None:
    name = "evidence." + ".".join(path)
    if any(not part for part in path):
        raise InvalidInput(f"{name}: empty name in evidence path", field=name, row=row)
    for part in path[:-1]:
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            raise InvalidInput(f"{name}: conflicts with another column", field=name, row=row)
        target = nested
    if path[-1] in target:
        raise InvalidInput(f"{name}: given twice", field=name, row=row)
    target[path[-1]] = item


def _dedupe(item: BulkItem | RowError, seen: dict[str, int]) -> BulkItem | RowError:
    if isinstance(item, RowError):
        return item
    first = seen.get(item.project_id)
    if first is not None:
        return RowError(
            item.row or 0,
            f"duplicate project id {item.project_id} (first on row {first})",
            "project_id",
            item.project_id,
        )
    seen[item.project_id] = item.row or 0
    return item


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
