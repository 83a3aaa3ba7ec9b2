#!/usr/bin/env python3
"""Checks contracts/envelope.json, the golden vectors of the payload-encryption
envelope (crates/atoll-envelope), with implementations independent of the Rust code:
the `cryptography` package for X25519, P-256, HKDF-SHA256, AES-256-GCM and SM4-GCM,
hashlib for SM3, and plain Python integers for the SM2 curve.

    pip install cryptography
    python3 contracts/check_envelope.py

The vectors themselves are written by the Rust test `regenerate_golden_vectors`;
this script only reads them. Exit status 0 means every vector checks.
"""
import hashlib
import json
import pathlib
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"atoll-envelope/v1"
LABEL_REQUEST = b"atoll-envelope/v1 request"
LABEL_RESPONSE = b"atoll-envelope/v1 response"

# The SM2 recommended curve (GM/T 0003.5).
SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
SM2_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
SM2_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
SM2_G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)


def sm2_add(p, q):
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % SM2_P == 0:
        return None
    if p == q:
        slope = (3 * p[0] * p[0] + SM2_A) * pow(2 * p[1], -1, SM2_P)
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, SM2_P)
    x = (slope * slope - p[0] - q[0]) % SM2_P
    return x, (slope * (p[0] - x) - p[1]) % SM2_P


def sm2_mul(k, point):
    result = None
    while k:
        if k & 1:
            result = sm2_add(result, point)
        point = sm2_add(point, point)
        k >>= 1
    return result


def sm2_encode(point):
    return b"\x04" + point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")


def sm2_decode(data):
    assert len(data) == 65 and data[0] == 4
    x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big")
    assert (y * y - x * x * x - SM2_A * x - SM2_B) % SM2_P == 0, "not on the SM2 curve"
    return x, y


def sm3_kdf(z, length):
    out, counter = b"", 1
    while len(out) < length:
        out += hashlib.new("sm3", z + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def public_key(suite, secret):
    if suite == 1:
        key = x25519.X25519PrivateKey.from_private_bytes(secret)
        return key.public_key().public_bytes_raw()
    if suite == 2:
        key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        return b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    scalar = int.from_bytes(secret, "big")
    assert 0 < scalar < SM2_N
    return sm2_encode(sm2_mul(scalar, SM2_G))


def agree(suite, secret, peer):
    if suite == 1:
        key = x25519.X25519PrivateKey.from_private_bytes(secret)
        return key.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
    if suite == 2:
        key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        peer_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer)
        return key.exchange(ec.ECDH(), peer_key)
    point = sm2_mul(int.from_bytes(secret, "big"), sm2_decode(peer))
    return sm2_encode(point)[1:]


def derive(suite, shared, label, transcript):
    if suite == 3:
        return sm3_kdf(shared + label + transcript, 16)
    return HKDF(hashes.SHA256(), 32, SALT, label + transcript).derive(shared)


def aead_open(suite, key, nonce, data, aad):
    if suite == 3:
        ciphertext, tag = data[:-16], data[-16:]
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(ciphertext) + decryptor.finalize()
    return AESGCM(key).decrypt(nonce, data, aad)


def encode_context(parts):
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def check(vector):
    suite = {"x25519-aes256gcm": 1, "p256-aes256gcm": 2, "sm2-sm4gcm": 3}[vector["suite"]]
    key_pair = bytes.fromhex(vector["server_key_pair"])
    assert key_pair[0] == suite and len(key_pair) == 33
    server_secret = key_pair[1:]
    server_public = public_key(suite, server_secret)
    assert server_public.hex() == vector["server_public_key"]
    key_id = hashlib.sha256(bytes([suite]) + server_public).digest()[:8]
    assert key_id.hex() == vector["key_id"]
    context = encode_context([part.encode() for part in vector["context_parts"]])
    assert context.hex() == vector["context"]

    envelope = bytes.fromhex(vector["envelope"])
    assert envelope[0] == 0xA1 and envelope[1] == suite and envelope[2:10] == key_id
    key_len = envelope[10]
    header = envelope[: 11 + key_len]
    ephemeral_public = header[11:]
    expected_ephemeral = public_key(suite, bytes.fromhex(vector["ephemeral_secret"]))
    assert ephemeral_public == expected_ephemeral
    nonce = envelope[11 + key_len : 23 + key_len]
    assert nonce.hex() == vector["nonce"]

    # The server's view: agree with the ephemeral key, derive, open.
    shared = agree(suite, server_secret, ephemeral_public)
    # The device's view must agree: its ephemeral secret with the server's public key.
    assert shared == agree(suite, bytes.fromhex(vector["ephemeral_secret"]), server_public)
    transcript = header + server_public
    request_key = derive(suite, shared, LABEL_REQUEST, transcript)
    response_key = derive(suite, shared, LABEL_RESPONSE, transcript)
    aad = envelope[: 23 + key_len] + context
    plaintext = aead_open(suite, request_key, nonce, envelope[23 + key_len :], aad)
    assert plaintext == vector["plaintext"].encode()

    response = bytes.fromhex(vector["response"])
    assert response[0] == 0xB1 and response[1] == suite
    assert response[2:14].hex() == vector["response_nonce"]
    opened = aead_open(suite, response_key, response[2:14], response[14:], response[:14])
    assert opened == vector["response_plaintext"].encode()


def main():
    path = pathlib.Path(__file__).with_name("envelope.json")
    vectors = json.loads(path.read_text())["vectors"]
    for vector in vectors:
        check(vector)
        print(f"ok {vector['name']}")
    print(f"{len(vectors)} vectors checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
