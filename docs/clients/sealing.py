"""sealing.py: seal and open a referral's identifying details in Python.

The format is docs/sealing.md's: an envelope binding the details to their
referral, encrypted with age (age-encryption.org/v1) to each agency's
hybrid post-quantum key (mlkem768x25519: HPKE with the MLKEM768-X25519 KEM,
HKDF-SHA256 and ChaCha20-Poly1305). Where the age package pyrage installs,
use it for the age part; this file does the age part with the
`cryptography` package (48 or later, for ML-KEM) alone, for machines where
it does not. A test (e2e/json_clients_test.go) opens what this seals with
the exchange's Go implementation, and opens what node's age-encryption
sealed.

    seal(details, binding, recipients) -> bytes
    open_sealed(blob, identities, binding) -> details
    Binding(request_id, sender, receiver)
    encode_details(dict) / decode_details(bytes): ReferralDetails in the
    protobuf binary encoding (referral.proto), keys as in JSON.
"""

import base64
import hashlib
import hmac
import os
import struct
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand


class Binding(NamedTuple):
    """The referral a blob belongs to: its request id, sender and receiver."""

    request_id: str
    sender: str
    receiver: str


MAX_DETAILS = 64 * 1024

# --- the envelope (docs/sealing.md) ---


def envelope(details: bytes, binding: Binding) -> bytes:
    if len(details) > MAX_DETAILS:
        raise ValueError("details are limited to 64 KiB")
    out = b"xchgseal\x01"
    for field in binding:
        b = field.encode()
        if not 1 <= len(b) <= 255:
            raise ValueError(f"binding field {field!r} must be 1 to 255 bytes")
        out += struct.pack(">H", len(b)) + b
    return out + struct.pack(">I", len(details)) + details


def unwrap_envelope(env: bytes, binding: Binding) -> bytes:
    at = 0

    def take(n):
        nonlocal at
        if at + n > len(env):
            raise ValueError("envelope is cut short")
        at += n
        return env[at - n:at]

    if take(8) != b"xchgseal" or take(1) != b"\x01":
        raise ValueError("not a version 1 sealed referral envelope")
    got = Binding(*(take(struct.unpack(">H", take(2))[0]).decode() for _ in range(3)))
    details = take(struct.unpack(">I", take(4))[0])
    if at != len(env):
        raise ValueError("bytes after the details")
    if got != binding:
        raise ValueError(f"sealed for another referral: {got}")
    return details


# --- ReferralDetails, protobuf binary encoding ---

_FIELDS = {1: "name", 2: "guardianContact", 3: "birthYear", 4: "caseNotes"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def encode_details(d: dict) -> bytes:
    out = b""
    for number, key in _FIELDS.items():
        value = d.get(key)
        if not value:
            continue
        if key == "birthYear":
            out += _varint(number << 3) + _varint(int(value))
        else:
            b = value.encode()
            out += _varint(number << 3 | 2) + _varint(len(b)) + b
    return out


def decode_details(b: bytes) -> dict:
    d, at = {}, 0

    def varint():
        nonlocal at
        n = shift = 0
        while True:
            byte = b[at]
            at += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return n

    while at < len(b):
        key = varint()
        name = _FIELDS.get(key >> 3, str(key >> 3))
        if key & 7 == 0:
            d[name] = varint()
        elif key & 7 == 2:
            n = varint()
            d[name] = b[at:at + n].decode()
            at += n
        else:
            raise ValueError("unexpected wire type in ReferralDetails")
    return d


# --- Bech32 (keys: age1pq1..., AGE-SECRET-KEY-PQ-1...) ---

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32_decode(s: str):
    s = s.strip().lower()
    hrp, _, data = s.rpartition("1")
    values = [_CHARSET.index(c) for c in data]
    if _polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values) != 1:
        raise ValueError("bad Bech32 checksum")
    acc = bits = 0
    out = bytearray()
    for v in values[:-6]:
        acc = acc << 5 | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append(acc >> bits & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise ValueError("bad Bech32 padding")
    return hrp, bytes(out)


# --- HPKE with MLKEM768-X25519 (X-Wing), HKDF-SHA256, ChaCha20-Poly1305 ---

_LABEL = b"age-encryption.org/mlkem768x25519"
_XWING = b"\\.//^\\"
_SUITE = b"HPKE" + struct.pack(">HHH", 0x647A, 0x0001, 0x0003)


def _extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), b"HPKE-v1" + _SUITE + label + ikm, hashlib.sha256).digest()


def _expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(hashes.SHA256(), length, struct.pack(">H", length) + b"HPKE-v1" + _SUITE + label + info).derive(prk)


def _key_schedule(shared_secret: bytes):
    context = b"\x00" + _extract(b"", b"psk_id_hash", b"") + _extract(b"", b"info_hash", _LABEL)
    secret = _extract(shared_secret, b"secret", b"")
    return _expand(secret, b"key", context, 32), _expand(secret, b"base_nonce", context, 12)


def _combine(ss_pq, ss_t, ct_t, pk_t):
    return hashlib.sha3_256(ss_pq + ss_t + ct_t + pk_t + _XWING).digest()


def _wrap(file_key: bytes, recipient: str):
    hrp, pk = bech32_decode(recipient)
    if hrp != "age1pq" or len(pk) != 1184 + 32:
        raise ValueError(f"not an age1pq1 hybrid recipient: {recipient[:12]}...")
    ss_pq, ct_pq = MLKEM768PublicKey.from_public_bytes(pk[:1184]).encapsulate()
    ephemeral = X25519PrivateKey.generate()
    ct_t = ephemeral.public_key().public_bytes_raw()
    ss_t = ephemeral.exchange(X25519PublicKey.from_public_bytes(pk[1184:]))
    key, nonce = _key_schedule(_combine(ss_pq, ss_t, ct_t, pk[1184:]))
    return ct_pq + ct_t, ChaCha20Poly1305(key).encrypt(nonce, file_key, b"")


def _unwrap(enc: bytes, body: bytes, seed: bytes):
    shake = hashlib.shake_256(seed).digest(96)
    pq, t = MLKEM768PrivateKey.from_seed_bytes(shake[:64]), X25519PrivateKey.from_private_bytes(shake[64:])
    ct_pq, ct_t = enc[:1088], enc[1088:]
    ss = _combine(pq.decapsulate(ct_pq), t.exchange(X25519PublicKey.from_public_bytes(ct_t)), ct_t,
                  t.public_key().public_bytes_raw())
    key, nonce = _key_schedule(ss)
    return ChaCha20Poly1305(key).decrypt(nonce, body, b"")


# --- age-encryption.org/v1 ---


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def _payload(file_key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))


CHUNK = 64 * 1024


def age_encrypt(plaintext: bytes, recipients) -> bytes:
    file_key = os.urandom(16)
    header = "age-encryption.org/v1\n"
    for r in recipients:
        enc, body = _wrap(file_key, r)
        b = _b64(body)
        lines = [b[i:i + 64] for i in range(0, len(b), 64)]
        if not lines or len(lines[-1]) == 64:
            lines.append("")
        header += f"-> mlkem768x25519 {_b64(enc)}\n" + "".join(line + "\n" for line in lines)
    header += "---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header.encode(), hashlib.sha256).digest()
    out = (header + " " + _b64(mac) + "\n").encode()
    nonce = os.urandom(16)
    aead = _payload(file_key, nonce)
    chunks = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    out += nonce
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        out += aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), chunk, b"")
    return out


def age_decrypt(blob: bytes, identities) -> bytes:
    seeds = []
    for line in identities:
        if not line.startswith("AGE-SECRET-KEY-"):
            continue  # comments and blank lines of a key ring file
        hrp, seed = bech32_decode(line)
        if hrp == "age-secret-key-pq-":
            seeds.append(seed)
    end = blob.index(b"\n---")
    header_end = blob.index(b"\n", end + 1)
    lines = blob[:end].decode().split("\n")
    if lines[0] != "age-encryption.org/v1":
        raise ValueError("not an age file")
    stanzas, i = [], 1
    while i < len(lines):
        args, body = lines[i].split(" "), ""
        i += 1
        while True:  # the body ends with its first line shorter than 64
            if i >= len(lines):
                raise ValueError("a stanza's body is cut short")
            body += lines[i]
            i += 1
            if len(lines[i - 1]) < 64:
                break
        stanzas.append((args, _unb64(body)))
    file_key = None
    for args, body in stanzas:
        if args[:2] != ["->", "mlkem768x25519"]:
            continue
        for seed in seeds:
            try:
                file_key = _unwrap(_unb64(args[2]), body, seed)
                break
            except Exception:
                continue
        if file_key:
            break
    if file_key is None:
        raise ValueError("no identity opens this blob")
    header = blob[:end + 4]
    mac = _unb64(blob[end + 5:header_end].decode())
    if not hmac.compare_digest(hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest(), mac):
        raise ValueError("the header's MAC does not match")
    payload = blob[header_end + 1:]
    aead, out = _payload(file_key, payload[:16]), b""
    rest, counter = payload[16:], 0
    while True:
        chunk, rest = rest[:CHUNK + 16], rest[CHUNK + 16:]
        last = not rest
        out += aead.decrypt(counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), chunk, b"")
        if last:
            return out
        counter += 1


def seal(details: dict, binding: Binding, recipients) -> bytes:
    """Seals ReferralDetails (a dict as in JSON) for the referral."""
    return age_encrypt(envelope(encode_details(details), binding), recipients)


def open_sealed(blob: bytes, identities, binding: Binding) -> dict:
    """Opens a referral's sealed details with the key ring's lines."""
    return decode_details(unwrap_envelope(age_decrypt(blob, identities), binding))
