"""WeCom callback crypto: signature, AES-256-CBC envelope (docs/wecom-protocol.md §1.3).

The same envelope serves the self-built app (ReceiveId = corp id, XML) and the
智能机器人 (ReceiveId = "", JSON).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeCom pads to 32 bytes, not the AES block size


class CryptoError(Exception):
    """Error codes follow Tencent's sample (-40001 signature … -40010 base64)."""

    SIGNATURE = -40001
    PARSE = -40002
    BAD_KEY = -40004
    RECEIVE_ID = -40005
    ENCRYPT = -40006
    DECRYPT = -40007
    BUFFER = -40008
    BASE64 = -40010

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


def signature(token: str, timestamp: str, nonce: str, data: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, data])).encode()).hexdigest()  # noqa: S324 - protocol-mandated


def check_signature(token: str, timestamp: str, nonce: str, data: str, given: str) -> bool:
    expected = signature(token, timestamp, nonce, data)
    return hmac.compare_digest(expected.encode(), given.lower().encode())


def _pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def _unpad(data: bytes) -> bytes:
    if not data:
        raise CryptoError(CryptoError.BUFFER, "empty plaintext")
    n = data[-1]
    if n < 1 or n > BLOCK or n > len(data) or data[-n:] != bytes([n]) * n:
        raise CryptoError(CryptoError.DECRYPT, "bad padding")
    return data[:-n]


class WeComCrypto:
    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise CryptoError(CryptoError.BAD_KEY, "EncodingAESKey must be 43 characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise CryptoError(CryptoError.BAD_KEY, "EncodingAESKey is not base64") from exc
        if len(key) != 32:
            raise CryptoError(CryptoError.BAD_KEY, "EncodingAESKey must decode to 32 bytes")
        self.token = token
        self.receive_id = receive_id
        self._key = key
        self._iv = key[:16]

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))

    def verify(self, timestamp: str, nonce: str, data: str, msg_signature: str) -> None:
        if not msg_signature or not check_signature(self.token, timestamp, nonce, data, msg_signature):
            raise CryptoError(CryptoError.SIGNATURE, "signature mismatch")

    def decrypt(self, encrypted: str) -> str:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CryptoError(CryptoError.BASE64, "ciphertext is not base64") from exc
        if not raw or len(raw) % 16:
            raise CryptoError(CryptoError.DECRYPT, "ciphertext length is not a multiple of 16")
        dec = self._cipher().decryptor()
        plain = _unpad(dec.update(raw) + dec.finalize())
        if len(plain) < 20:
            raise CryptoError(CryptoError.BUFFER, "plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CryptoError(CryptoError.BUFFER, "message length exceeds plaintext")
        msg = plain[20 : 20 + length]
        receive_id = plain[20 + length :]
        if receive_id.decode("utf-8", "replace") != self.receive_id:
            raise CryptoError(CryptoError.RECEIVE_ID, "ReceiveId mismatch")
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CryptoError(CryptoError.DECRYPT, "message is not UTF-8") from exc

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        if len(prefix) != 16:
            raise CryptoError(CryptoError.ENCRYPT, "random prefix must be 16 bytes")
        body = message.encode("utf-8")
        plain = prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode("utf-8")
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(_pad(plain)) + enc.finalize()).decode()

    def verify_and_decrypt(self, timestamp: str, nonce: str, encrypted: str, msg_signature: str) -> str:
        self.verify(timestamp, nonce, encrypted, msg_signature)
        return self.decrypt(encrypted)

    def seal(self, message: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """Encrypt a reply and sign it: returns (encrypt, msg_signature)."""
        encrypted = self.encrypt(message)
        return encrypted, signature(self.token, timestamp, nonce, encrypted)
