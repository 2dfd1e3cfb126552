"""Tests for grantflow.signing: Ed25519 keys, signed checkpoint notes, hostile notes."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from grantflow.audit import TreeHead
from grantflow.errors import EvidenceError, InvalidInput
from grantflow.signing import (
    FORMAT_LINE,
    checkpoint_body,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    open_checkpoint,
    private_key_pem,
    public_key_pem,
    sign_checkpoint,
)

ROOT = hashlib.sha256(b"root").hexdigest()
HEAD = TreeHead(
    origin="city-federation.example/grants",
    size=1234,
    root=ROOT,
    at=datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC),
)


def test_checkpoint_body_is_the_documented_five_lines() -> None:
    """Origin, decimal size, base64 root, format line, UTC time: byte for byte."""
    root_b64 = base64.b64encode(bytes.fromhex(ROOT)).decode()
    assert (
        checkpoint_body(HEAD)
        == (
            f"city-federation.example/grants\n1234\n{root_b64}\n{FORMAT_LINE}\n"
            "time 2026-03-01T09:30:00.123456Z\n"
        ).encode()
    )


def test_signed_checkpoint_round_trips_and_names_its_key() -> None:
    """sign_checkpoint then open_checkpoint gives the head back; the key id is C2SP's."""
    key = generate_key()
    note = sign_checkpoint(HEAD, key)
    body, _, signature_line = note.partition("\n\n")
    assert body.encode() + b"\n" == checkpoint_body(HEAD)
    assert signature_line.startswith("\u2014 city-federation.example/grants ")
    signature = base64.b64decode(signature_line.split(" ")[2])
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    expected_id = hashlib.sha256(HEAD.origin.encode() + b"\n\x01" + raw).digest()[:4]
    assert signature[:4] == key_id(HEAD.origin, key.public_key()) == expected_id
    key.public_key().verify(signature[4:], checkpoint_body(HEAD))
    assert open_checkpoint(note, key.public_key()) == HEAD
    assert open_checkpoint(note.encode(), key.public_key(), origin=HEAD.origin) == HEAD


def test_other_keys_altered_bodies_and_other_logs_are_evidence_errors() -> None:
    """A forged or altered checkpoint never opens: each case is an EvidenceError."""
    key, other = generate_key(), generate_key()
    note = sign_checkpoint(HEAD, key)
    with pytest.raises(EvidenceError, match="no signature by this key"):
        open_checkpoint(note, other.public_key())
    grown = note.replace("\n1234\n", "\n1235\n")
    with pytest.raises(EvidenceError, match="does not verify"):
        open_checkpoint(grown, key.public_key())
    with pytest.raises(EvidenceError, match="not 'another'"):
        open_checkpoint(note, key.public_key(), origin="another")
    resigned = sign_checkpoint(HEAD.model_copy(update={"size": 1235}), other)
    forged = grown.split("\n\n")[0] + "\n\n" + resigned.split("\n\n")[1]
    with pytest.raises(EvidenceError):
        open_checkpoint(forged, key.public_key())


def test_unknown_signers_are_ignored() -> None:
    """A witness's extra signature line does not stop the purchaser's from verifying."""
    key, witness = generate_key(), generate_key()
    note = sign_checkpoint(HEAD, key)
    cosigned = note + sign_checkpoint(HEAD, witness).split("\n\n")[1].replace(
        HEAD.origin, "witness.example", 1
    )
    assert open_checkpoint(cosigned, key.public_key()) == HEAD


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.split("\n\n")[0] + "\n",  # no signature lines
        lambda n: n.replace("\n\n\u2014 ", "\n\n- "),  # not an em dash
        lambda n: n.replace("\n1234\n", "\n01234\n"),  # size not canonical
        lambda n: n.replace("\n1234\n", "\n-1\n"),
        lambda n: n.replace("\n1234\n", "\n\u0661\n"),  # an Arabic-Indic digit
        lambda n: n.replace("time ", "time: "),
        lambda n: n.replace(FORMAT_LINE, "grantflow-checkpoint v2"),
        lambda n: n.replace("\n", "\r\n"),
        lambda n: n.replace("\ntime", "\nextra\ntime"),
        lambda n: n[:-1],  # no final newline
        lambda n: n.replace("=\n", "=!\n", 1),  # root not base64
        lambda n: n.replace(".123456Z", ".123456+08:00"),
        lambda n: n + "x" * 70_000 + "\n",
        lambda n: n.replace("city-federation", "city federation", 1),
    ],
)
def test_malformed_checkpoints_are_invalid_input(mutate: object) -> None:
    """Anything but the exact format is InvalidInput, never a raw parsing exception."""
    key = generate_key()
    note = sign_checkpoint(HEAD, key)
    bad = mutate(note)  # type: ignore[operator]
    assert bad != note
    with pytest.raises((InvalidInput, EvidenceError)) as info:
        open_checkpoint(bad, key.public_key())
    assert isinstance(info.value, InvalidInput) or "verify" in info.value.message


def test_non_utf8_checkpoint_is_invalid_input() -> None:
    """Bytes that are not UTF-8 are refused before anything is parsed."""
    with pytest.raises(InvalidInput, match="UTF-8"):
        open_checkpoint(b"\xff\xfe\n\n", generate_key().public_key())


def test_keys_load_from_pem_bytes_text_and_files(tmp_path: Path) -> None:
    """PEM keys load from bytes, text or a path; encrypted keys need their password."""
    key = generate_key()
    pem = private_key_pem(key)
    path = tmp_path / "purchaser.pem"
    path.write_bytes(pem)
    for source in (pem, pem.decode(), path, str(path)):
        assert private_key_pem(load_private_key(source)) == pem
    public = tmp_path / "purchaser.pub"
    public.write_bytes(public_key_pem(key))
    assert public_key_pem(load_public_key(public)) == public_key_pem(key.public_key())
    locked = private_key_pem(key, password=b"s3cret")
    assert b"ENCRYPTED" in locked
    assert private_key_pem(load_private_key(locked, password=b"s3cret")) == pem
    with pytest.raises(InvalidInput):
        load_private_key(locked)
    with pytest.raises(InvalidInput):
        load_private_key(locked, password=b"wrong")


def test_bad_key_sources_are_invalid_input(tmp_path: Path) -> None:
    """Missing files, garbage, huge files and non-Ed25519 keys are InvalidInput."""
    with pytest.raises(InvalidInput, match="cannot read"):
        load_private_key(tmp_path / "missing.pem")
    with pytest.raises(InvalidInput):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"A" * 100_000)
    with pytest.raises(InvalidInput, match="too large"):
        load_public_key(huge)
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ecdsa.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidInput, match="not an Ed25519 key"):
        load_private_key(ec_pem)
    ec_public = ecdsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidInput, match="not an Ed25519 key"):
        load_public_key(ec_public)
