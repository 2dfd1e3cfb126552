"""Tests for grantflow._merkle: RFC 6962 hashing and proofs, against the RFC's test vectors.

The vectors are the eight-leaf tree of Certificate Transparency's reference test suite
(RFC 6962 hashing; the same data ships with google/certificate-transparency and
transparency-dev/merkle): the leaf inputs, the root of every prefix, and known audit
paths and consistency proofs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grantflow._merkle import (
    EMPTY_ROOT,
    consistency_path,
    hash_children,
    hash_leaf,
    inclusion_path,
    tree_root,
    verify_consistency_path,
    verify_inclusion_path,
)
from grantflow.errors import InvalidInput

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
#: ROOTS[i] is the root of the tree over LEAVES[: i + 1].
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


#: (1-based leaf number, tree size, audit path)
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (3, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        2,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

#: (old size, new size, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
LEAF_HASHES = [hash_leaf(d) for d in LEAVES]


def test_hashing_matches_the_rfc_vectors() -> None:
    """Empty tree, empty leaf, a leaf and a node hash as RFC 6962 defines them."""
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hash_leaf(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert hash_leaf(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert hash_children(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    assert hash_children(hash_leaf(b"a"), hash_leaf(b"b")) != hash_leaf(
        hash_leaf(b"a") + hash_leaf(b"b")
    )


def test_roots_of_every_prefix_match_the_vectors() -> None:
    """The tree over the first n test leaves has the published root, n = 0..8."""
    assert tree_root([]) == EMPTY_ROOT
    for n in range(1, 9):
        assert tree_root(LEAF_HASHES[:n]) == ROOTS[n - 1], n


@pytest.mark.parametrize(("leaf", "size", "path"), INCLUSION)
def test_inclusion_paths_match_and_verify(leaf: int, size: int, path: list[bytes]) -> None:
    """Generated audit paths equal the published ones and verify against the roots."""
    assert inclusion_path(LEAF_HASHES[:size], leaf - 1) == path
    assert verify_inclusion_path(LEAF_HASHES[leaf - 1], leaf - 1, size, path, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_and_verify(old: int, new: int, path: list[bytes]) -> None:
    """Generated consistency proofs equal the published ones and verify."""
    assert consistency_path(LEAF_HASHES[:new], old) == path
    assert verify_consistency_path(old, new, ROOTS[old - 1], ROOTS[new - 1], path)


def _inclusion_probes(
    index: int, size: int, path: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[int, int, bytes, list[bytes], bytes]]:
    probes = [
        (index - 1, size, leaf, path, root),
        (index + 1, size, leaf, path, root),
        (index ^ 2, size, leaf, path, root),
        (index, size * 2, leaf, path, root),
        (index, size // 2, leaf, path, root),
        (index, size, b"WrongLeaf", path, root),
        (index, size, leaf, path, EMPTY_ROOT),
        (index, size, leaf, path, SOME_HASH),
        (index, size, leaf, [*path, b""], root),
        (index, size, leaf, [*path, root], root),
        (index, size, leaf, [b"", *path], root),
        (index, size, leaf, [root, *path], root),
    ]
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, leaf, flipped, root))
    if path:
        probes.append((index, size, leaf, path[:-1], root))
    if len(path) > 1:
        probes.append((index, size, leaf, [path[0], SOME_HASH, *path[1:]], root))
    return [p for p in probes if p[0] >= 0 and p[1] > 0]


@pytest.mark.parametrize(("leaf", "size", "path"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_do_not_verify(leaf: int, size: int, path: list[bytes]) -> None:
    """Wrong index, size, leaf or root, and added, removed or flipped hashes all fail."""
    probes = _inclusion_probes(leaf - 1, size, path, ROOTS[size - 1], LEAF_HASHES[leaf - 1])
    for index, tree_size, leaf_hash, proof, root in probes:
        if index < tree_size:
            assert not verify_inclusion_path(leaf_hash, index, tree_size, proof, root), (
                index,
                tree_size,
            )


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_do_not_verify(old: int, new: int, path: list[bytes]) -> None:
    """Wrong sizes or roots, empty, padded, truncated or flipped proofs all fail."""
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes: list[tuple[int, int, bytes, bytes, Sequence[bytes]]] = [
        (old - 1, new, r1, r2, path),
        (old + 1, new, r1, r2, path),
        (old ^ 2, new, r1, r2, path),
        (old, new * 2, r1, r2, path),
        (old, new // 2, r1, r2, path),
        (old, new, b"WrongRoot", r2, path),
        (old, new, r1, b"WrongRoot", path),
        (old, new, r2, r1, path),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*path, b""]),
        (old, new, r1, r2, [*path, r1]),
        (old, new, r1, r2, [*path, r2]),
        (old, new, r1, r2, [b"", *path]),
        (old, new, r1, r2, [r1, *path]),
        (old, new, r1, r2, [r2, *path]),
        (old, new, r1, r2, [path[0], *path]),
        (old, new, r1, r2, path[:-1]),
    ]
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((old, new, r1, r2, flipped))
    for size1, size2, root1, root2, proof in probes:
        assert not verify_consistency_path(size1, size2, root1, root2, proof), (size1, size2)


def test_degenerate_consistency_cases() -> None:
    """Empty old trees are consistent with anything; equal sizes need equal roots, no proof."""
    r1, r2 = hashlib.sha256(b"1").digest(), hashlib.sha256(b"2").digest()
    assert verify_consistency_path(0, 0, r1, r1, [])
    assert verify_consistency_path(0, 1, r1, r2, [])
    assert verify_consistency_path(1, 1, r2, r2, [])
    assert not verify_consistency_path(0, 0, r1, r2, [])
    assert not verify_consistency_path(1, 1, r1, r2, [])
    assert not verify_consistency_path(1, 0, r1, r2, [])
    assert not verify_consistency_path(2, 1, r1, r2, [])
    assert not verify_consistency_path(1, 2, r1, r2, [])
    assert not verify_consistency_path(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency_path(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency_path(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


def test_single_leaf_and_bad_arguments() -> None:
    """A one-leaf tree's root is its leaf; impossible indexes and sizes are refused."""
    leaf = hash_leaf(b"data")
    assert verify_inclusion_path(leaf, 0, 1, [], leaf)
    assert not verify_inclusion_path(leaf, 0, 1, [], b"")
    assert not verify_inclusion_path(b"", 0, 1, [], leaf)
    for index, size in ((0, 0), (1, 0), (2, 1)):
        assert not verify_inclusion_path(SOME_HASH, index, size, [], EMPTY_ROOT)
    with pytest.raises(InvalidInput):
        inclusion_path([leaf], 1)
    with pytest.raises(InvalidInput):
        consistency_path([leaf], 2)
    with pytest.raises(InvalidInput):
        verify_inclusion_path(leaf, -1, 1, [], leaf)


def _reference_root(leaves: Sequence[bytes]) -> bytes:
    """MTH exactly as RFC 6962 section 2.1 writes it (recursive, slicing)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hash_children(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_every_proof_of_random_trees_verifies(size: int, data: st.DataObject) -> None:
    """For random sizes: root = the RFC's recursion; every path and prefix proof verifies."""
    leaves = [hash_leaf(i.to_bytes(4, "big")) for i in range(size)]
    root = tree_root(leaves)
    assert root == _reference_root(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    path = inclusion_path(leaves, index)
    assert verify_inclusion_path(leaves[index], index, size, path, root)
    assert not verify_inclusion_path(leaves[(index + 1) % size], index, size, path, root) or (
        size == 1
    )
    old = data.draw(st.integers(0, size), label="old")
    old_root = tree_root(leaves[:old])
    proof = consistency_path(leaves, old)
    assert verify_consistency_path(old, size, old_root, root, proof)
    if 0 < old < size:
        forked = [*leaves[: old - 1], hash_leaf(b"forged"), *leaves[old:]]
        assert not verify_consistency_path(old, size, old_root, tree_root(forked), proof)
