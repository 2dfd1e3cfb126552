"""Merkle trees as Certificate Transparency builds them (RFC 6962, RFC 9162 section 2.1).

Pure functions over leaf hashes (32-byte SHA-256 digests): the tree hash, audit paths
(inclusion proofs), consistency proofs, and their verification. Nothing here knows about
audit entries or stores; `grantflow.audit` re-exports these functions and applies them
to the log of audit entries.

* a leaf hash is ``SHA-256(0x00 || data)`` (`hash_leaf`);
* an interior node is ``SHA-256(0x01 || left || right)`` (`hash_children`);
* the tree over ``n > 1`` leaves splits at ``k``, the largest power of two below ``n``:
  ``MTH(D[0:n]) = hash_children(MTH(D[0:k]), MTH(D[k:n]))``; one leaf is its own hash, and
  the empty tree's hash is ``SHA-256()`` of nothing.

Verification functions return ``False`` for any proof that does not verify, including
proofs of the wrong length and hashes that are not 32 bytes; they raise only for
arguments no proof could fit (negative sizes, an index outside the tree).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from grantflow.errors import InvalidInput

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_path",
    "hash_children",
    "hash_leaf",
    "inclusion_path",
    "tree_root",
    "verify_consistency_path",
    "verify_inclusion_path",
]

#: Bytes in every hash of the tree (SHA-256).
HASH_SIZE = 32
#: The hash of the empty tree: SHA-256 of no bytes.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def hash_leaf(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below `n` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of `leaves` (leaf hashes, in log order).

    Linear: the leaves are folded into perfect subtrees left to right (the binary
    decomposition of the size), which are then joined right to left, exactly the tree
    the RFC's recursive definition describes.
    """
    if not leaves:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        size, node = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, node = left_size + size, hash_children(left, node)
        stack.append((size, node))
    root = stack[-1][1]
    for _size, left in reversed(stack[:-1]):
        root = hash_children(left, root)
    return root


def _subtree(leaves: Sequence[bytes], start: int, stop: int) -> bytes:
    return tree_root(leaves[start:stop])


def _check_size(size: int, name: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path of leaf `index` in the tree over `leaves` (RFC 9162 2.1.3.1).

    The hashes are listed from the leaf's sibling up to the root's child.
    """
    _check_size(index, "index")
    if index >= len(leaves):
        raise InvalidInput(
            f"index {index} is outside a tree of {len(leaves)} leaves", field="index"
        )
    path: list[bytes] = []
    start, stop = 0, len(leaves)
    while stop - start > 1:
        k = _split(stop - start)
        if index - start < k:
            path.append(_subtree(leaves, start + k, stop))
            stop = start + k
        else:
            path.append(_subtree(leaves, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return the proof that the first `old_size` leaves are a prefix (RFC 9162 2.1.4.1)."""
    _check_size(old_size, "old_size")
    if old_size > len(leaves):
        raise InvalidInput(
            f"old size {old_size} is larger than the tree ({len(leaves)} leaves)",
            field="old_size",
        )
    if old_size in (0, len(leaves)):
        return []
    path: list[bytes] = []
    start, stop, m, whole = 0, len(leaves), old_size, True
    while True:
        n = stop - start
        if m == n:
            if not whole:
                path.append(_subtree(leaves, start, stop))
            break
        k = _split(n)
        if m <= k:
            path.append(_subtree(leaves, start + k, stop))
            stop = start + k
        else:
            path.append(_subtree(leaves, start, start + k))
            start, m, whole = start + k, m - k, False
    path.reverse()
    return path


def _hashes_ok(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion_path(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Return whether `path` proves leaf hash `leaf` is leaf `index` of the tree `root`.

    RFC 9162 section 2.1.3.2, step by step.
    """
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size or not _hashes_ok(leaf, root, *path):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency_path(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """Return whether `path` proves tree `new_root` extends tree `old_root`.

    RFC 9162 section 2.1.4.2. An empty old tree is consistent with every tree (with an
    empty proof); equal sizes need equal roots and an empty proof.
    """
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size > new_size or not _hashes_ok(old_root, new_root, *path):
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path
    if not path:
        return False
    nodes = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
