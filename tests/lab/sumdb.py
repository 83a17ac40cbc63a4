"""A verifiable checksum database (go.sum database) for the lab, signed with a lab key.

The go command only accepts a database whose signed tree head verifies with the key in GOSUMDB
and whose tiles prove each record's inclusion, so this follows golang.org/x/mod/sumdb exactly:
note signatures (Ed25519, "— name base64(keyhash || sig)"), RFC 6962 hashing, tiles of height 8
(tlog/tile.go). There is no maintained Python implementation of this protocol, hence the code.
With ``GOSUMDB=sum.golang.org+<vkey>`` the go command talks to https://sum.golang.org and
verifies against this key.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

TILE_HEIGHT = 8
_ALG_ED25519 = b"\x01"


def record_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes (the split is the largest power of two < n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def _key_hash(name: str, pubkey: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + pubkey).digest()[:4]


class Signer:
    def __init__(self, name: str, seed: bytes | None = None) -> None:
        self.name = name
        self._key = (Ed25519PrivateKey.from_private_bytes(seed) if seed
                     else Ed25519PrivateKey.generate())
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._pub = _ALG_ED25519 + raw
        self._hash = _key_hash(name, self._pub)

    @property
    def verifier_key(self) -> str:
        """The ``name+hash+key`` form the go command takes in GOSUMDB."""
        return f"{self.name}+{self._hash.hex()}+{base64.b64encode(self._pub).decode()}"

    def sign_note(self, text: bytes) -> bytes:
        sig = self._key.sign(text)
        line = f"— {self.name} {base64.b64encode(self._hash + sig).decode()}\n"
        return text + b"\n" + line.encode()


_TILE_RE = re.compile(r"^tile/(\d+)/(data|\d+)/((?:x\d{3}/)*\d{3})(?:\.p/(\d+))?$")


def parse_tile_path(path: str) -> tuple[int, int, int, int] | None:
    """tile/H/L/NNN[.p/W] -> (H, L, N, W), L = -1 for data tiles; None when malformed."""
    m = _TILE_RE.match(path)
    if not m:
        return None
    height = int(m.group(1))
    level = -1 if m.group(2) == "data" else int(m.group(2))
    index = int("".join(part.lstrip("x") for part in m.group(3).split("/")))
    width = int(m.group(4)) if m.group(4) else 1 << height
    if height != TILE_HEIGHT or not 0 < width <= 1 << height:
        return None
    return height, level, index, width


class ChecksumDB:
    """Records numbered from 0 in order; lookups by "path@version"."""

    def __init__(self, signer: Signer, records: list[tuple[str, str, bytes]]) -> None:
        self.signer = signer
        self._texts = [text for _, _, text in records]
        self._ids = {f"{path}@{version}": i for i, (path, version, _) in enumerate(records)}
        self._leaves = [record_hash(t) for t in self._texts]
        root = merkle_root(self._leaves)
        tree = f"go.sum database tree\n{len(self._texts)}\n{base64.b64encode(root).decode()}\n"
        self.signed_tree = signer.sign_note(tree.encode())

    @property
    def size(self) -> int:
        return len(self._texts)

    def lookup(self, path: str, version: str) -> bytes | None:
        rid = self._ids.get(f"{path}@{version.removesuffix('/go.mod')}")
        if rid is None:
            return None
        return f"{rid}\n".encode() + self._texts[rid] + b"\n" + self.signed_tree

    def tile(self, tile_path: str) -> bytes | None:
        parsed = parse_tile_path(tile_path)
        if parsed is None:
            return None
        height, level, index, width = parsed
        if level == -1:
            start = index << height
            if start + width > self.size:
                return None
            return b"".join(t + b"\n" for t in self._texts[start:start + width])
        # A hash tile at tile level L holds tree nodes at tree level L*H, indices index*2^H...
        tree_level = level * height
        span = 1 << tree_level
        first = index << height
        out = []
        for i in range(first, first + width):
            lo, hi = i * span, (i + 1) * span
            if hi > self.size:
                return None
            out.append(merkle_root(self._leaves[lo:hi]))
        return b"".join(out)


def key_id(vkey: str) -> int:
    """The 32-bit key hash in a verifier key (for tests)."""
    return struct.unpack(">I", bytes.fromhex(vkey.split("+")[1]))[0]
