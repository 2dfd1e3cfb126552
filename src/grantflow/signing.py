"""Signed checkpoints: a tree head of the audit log, signed with the purchaser's Ed25519 key.

A checkpoint is a C2SP signed note (the format of Certificate Transparency's and the Go
checksum database's checkpoints): a UTF-8 text body of five lines, a blank line, and one
signature line per signer::

    <origin>
    <tree size, decimal>
    <root hash, base64>
    grantflow-checkpoint v1
    time <YYYY-MM-DDTHH:MM:SS.ffffffZ>

    — <origin> <base64(key id || Ed25519 signature)>

The Ed25519 signature covers the body bytes exactly, final newline included. The key id
is the first four bytes of ``SHA-256(origin || 0x0A || 0x01 || public key)``. Keys are
stored as PEM (PKCS#8 private keys, SubjectPublicKeyInfo public keys), the format
``openssl genpkey -algorithm ed25519`` writes.

>>> from datetime import UTC, datetime
>>> from grantflow.audit import TreeHead
>>> key = generate_key()
>>> head = TreeHead(size=0, root="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
...                 at=datetime(2026, 3, 1, tzinfo=UTC))
>>> note = sign_checkpoint(head, key)
>>> print(checkpoint_body(head).decode(), end="")
grantflow
0
47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
grantflow-checkpoint v1
time 2026-03-01T00:00:00.000000Z
>>> open_checkpoint(note, key.public_key()) == head
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from grantflow._canonical import iso_utc
from grantflow.audit import TreeHead
from grantflow.errors import EvidenceError, InvalidInput

__all__ = [
    "FORMAT_LINE",
    "KeySource",
    "MAX_CHECKPOINT_BYTES",
    "checkpoint_body",
    "checkpoint_head",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "open_checkpoint",
    "private_key_pem",
    "public_key_pem",
    "sign_checkpoint",
]

#: The fourth body line: names this encoding of the log (leaves, order, time line).
FORMAT_LINE = "grantflow-checkpoint v1"
#: Largest checkpoint text read (a body and a handful of signatures need far less).
MAX_CHECKPOINT_BYTES = 64 * 1024
_MAX_KEY_BYTES = 16 * 1024
_ED25519 = b"\x01"
_DASH = "\u2014 "

KeySource = bytes | str | os.PathLike[str]


# -- keys --------------------------------------------------------------------------------


def generate_key() -> Ed25519PrivateKey:
    """Return a new Ed25519 private key (keep it with the purchaser, outside the database)."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey, *, password: bytes | None = None) -> bytes:
    """Return `key` as PKCS#8 PEM, encrypted with `password` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Return the public half of `key` as SubjectPublicKeyInfo PEM (to give to auditors)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(source: KeySource, what: str) -> bytes:
    """PEM bytes as given, PEM text as given, or the contents of a file path."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return source.encode("ascii", "replace")
    path = Path(source)
    try:
        with path.open("rb") as stream:
            data = stream.read(_MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} {path}: {exc.strerror}", field=what) from None
    if len(data) > _MAX_KEY_BYTES:
        raise InvalidInput(f"{path} is too large to be a {what}", field=what)
    return data


def load_private_key(source: KeySource, *, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM bytes or text, or from a PEM file's path.

    Raises:
        InvalidInput: unreadable, not PEM, encrypted without (or with a wrong) password,
            or not an Ed25519 key.
    """
    data = _read(source, "private_key")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(
            f"not a usable PEM private key: {exc}".splitlines()[0], field="private_key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput("the private key is not an Ed25519 key", field="private_key")
    return key


def load_public_key(source: KeySource) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM bytes or text, or from a PEM file's path.

    Raises:
        InvalidInput: unreadable, not PEM, or not an Ed25519 key.
    """
    data = _read(source, "public_key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(
            f"not a usable PEM public key: {exc}".splitlines()[0], field="public_key"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("the public key is not an Ed25519 key", field="public_key")
    return key


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """Return the 4-byte C2SP key id: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _ED25519 + raw).digest()[:4]


# -- checkpoints -------------------------------------------------------------------------


def checkpoint_body(head: TreeHead) -> bytes:
    """Return the exact bytes a checkpoint's signature covers (see the module docstring)."""
    root = base64.b64encode(bytes.fromhex(head.root)).decode("ascii")
    text = f"{head.origin}\n{head.size}\n{root}\n{FORMAT_LINE}\ntime {iso_utc(head.at)}\n"
    return text.encode("utf-8")


def sign_checkpoint(head: TreeHead, key: Ed25519PrivateKey) -> str:
    """Return the signed checkpoint text of `head`, signed by `key` under its origin."""
    body = checkpoint_body(head)
    signature = key_id(head.origin, key.public_key()) + key.sign(body)
    line = f"{_DASH}{head.origin} {base64.b64encode(signature).decode('ascii')}\n"
    return body.decode("utf-8") + "\n" + line


def open_checkpoint(
    note: str | bytes, public_key: Ed25519PublicKey, *, origin: str | None = None
) -> TreeHead:
    """Verify a signed checkpoint with `public_key` and return its tree head.

    Args:
        note: the checkpoint text, as `sign_checkpoint` wrote it.
        public_key: the purchaser's public key.
        origin: the log name expected; any origin is taken when omitted.

    Raises:
        InvalidInput: the text is not a checkpoint in this format.
        EvidenceError: no signature by `public_key` under the origin, or one that does
            not verify (the body was altered or signed by another key).
    """
    body, signatures = _split(note)
    head = _parse_body(body)
    if origin is not None and head.origin != origin:
        raise EvidenceError(f"the checkpoint is of log {head.origin!r}, not {origin!r}")
    wanted = key_id(head.origin, public_key)
    for name, signature in signatures:
        if name == head.origin and signature[:4] == wanted:
            try:
                public_key.verify(signature[4:], body)
            except InvalidSignature:
                raise EvidenceError(
                    "the checkpoint's signature does not verify with this key"
                ) from None
            return head
    raise EvidenceError("the checkpoint has no signature by this key")


def checkpoint_head(note: str | bytes) -> TreeHead:
    """Read the tree head a checkpoint's text states, WITHOUT checking any signature.

    For showing what a checkpoint says; trust it only through `open_checkpoint`.

    Raises:
        InvalidInput: the text is not a checkpoint in this format.
    """
    body, _signatures = _split(note)
    return _parse_body(body)


def _split(note: str | bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    raw = note if isinstance(note, bytes) else note.encode("utf-8", "replace")
    if len(raw) > MAX_CHECKPOINT_BYTES:
        raise InvalidInput(
            f"a checkpoint is at most {MAX_CHECKPOINT_BYTES} bytes", field="checkpoint"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("a checkpoint must be UTF-8 text", field="checkpoint") from None
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text) or not text.endswith("\n"):
        raise InvalidInput(
            "a checkpoint has no control characters but newlines and ends with one",
            field="checkpoint",
        )
    cut = text.rfind("\n\n")
    if cut < 0:
        raise InvalidInput("the checkpoint has no signature lines", field="checkpoint")
    body, lines = text[: cut + 1], text[cut + 2 :].splitlines()
    signatures = [_parse_signature(line) for line in lines]
    if not signatures:
        raise InvalidInput("the checkpoint has no signature lines", field="checkpoint")
    return body.encode("utf-8"), signatures


def _parse_signature(line: str) -> tuple[str, bytes]:
    parts = line.removeprefix(_DASH).split(" ")
    if not line.startswith(_DASH) or len(parts) != 2 or not parts[0]:
        raise InvalidInput("a malformed signature line in the checkpoint", field="checkpoint")
    try:
        signature = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise InvalidInput(
            "a signature in the checkpoint is not base64", field="checkpoint"
        ) from None
    if len(signature) < 5:
        raise InvalidInput("a signature in the checkpoint is too short", field="checkpoint")
    return parts[0], signature


def _parse_body(body: bytes) -> TreeHead:
    lines = body.decode("utf-8").split("\n")[:-1]
    if len(lines) != 5 or lines[3] != FORMAT_LINE or not lines[4].startswith("time "):
        raise InvalidInput(
            f"not a {FORMAT_LINE} checkpoint body (origin, size, root, format, time)",
            field="checkpoint",
        )
    origin, size_text, root_text, _format, time_line = lines
    if not size_text.isdigit() or not size_text.isascii() or size_text != str(int(size_text)):
        raise InvalidInput("the checkpoint's size is not a decimal number", field="checkpoint")
    try:
        root = base64.b64decode(root_text, validate=True)
        at = datetime.fromisoformat(time_line.removeprefix("time ").removesuffix("Z"))
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "the checkpoint's root or time is malformed", field="checkpoint"
        ) from None
    try:
        head = TreeHead(
            origin=origin, size=int(size_text), root=root.hex(), at=at.replace(tzinfo=UTC)
        )
    except ValidationError:
        raise InvalidInput(
            "the checkpoint's origin, size or root is invalid", field="checkpoint"
        ) from None
    if checkpoint_body(head) != body:
        raise InvalidInput("the checkpoint body is not in canonical form", field="checkpoint")
    return head
