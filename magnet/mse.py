"""BitTorrent Message Stream Encryption (MSE/PE), sans-IO, both ends of a connection.

Owns the obfuscated handshake that some peers require before the BitTorrent handshake:
a 768-bit Diffie-Hellman exchange, the req1/req2/req3 synchronisation hashes, RC4-drop1024
keyed by HASH('keyA'|'keyB', S, SKEY), and the crypto_provide/crypto_select negotiation
between plaintext and RC4 (the Vuze "Message Stream Encryption" spec, as implemented by
libtorrent, Transmission and anacrolix/torrent). The cores are fed bytes and hand back
bytes and events; they never read a clock or a socket, and randomness is injected.
"""

from __future__ import annotations

import enum
import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext

__all__ = [
    "BT_PROTOCOL_HEADER",
    "CryptoMethod",
    "HandshakeComplete",
    "MSE_PRIME",
    "MseEvent",
    "MseFailed",
    "MseInitiator",
    "MseResponder",
    "MseUsageError",
    "sniff_handshake",
    "stream_key_hash",
]

# ---------------------------------------------------------------------------------------
# Theory of operation.
#
#   1 A->B: Ya, PadA
#   2 B->A: Yb, PadB
#   3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
#           ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
#   4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
#   5 A->B: ENCRYPT2(payload)
#
# Neither side knows how long the other's PadA/PadB is, so each one finds its place in the
# stream by scanning: B looks for HASH('req1', S) at most 512 bytes after Ya, and A looks for
# the RC4-encrypted VC (the first 8 bytes of B's keystream) at most 512 bytes after Yb.
# ENCRYPT is one RC4 stream per direction that never restarts: IA is always RC4, and if
# RC4 is selected the payload simply continues the same keystream. If plaintext is
# selected, everything after PadD (B->A) or after IA (A->B) travels in the clear.
# A sends step 3 only after Yb has arrived, and nothing after it until step 4 has told it
# which method won, so a core hands out encrypt()/decrypt() only once it is complete.
# Timeouts (the spec suggests 30 s per step) belong to the caller.
#
# Driving a core: write data_to_send() after construction and after every receive_data();
# on HandshakeComplete hand initial_payload + leftover to the peer-wire parser, then run
# every later read through decrypt() and every write through encrypt(). EncryptedStream
# does exactly that, once, for both the resolver (initiator) and serve (responder).
#
# Policies (the CLI's --encryption), after libtorrent's out_enc_policy/in_enc_policy:
#   prefer  - dial with MseInitiator(provide=RC4|PLAINTEXT, initial_payload=our handshake).
#             A peer without MSE reads Ya as a broken handshake and hangs up, so on
#             MseFailed (usually "peer closed ...") or a timeout, redial once with a plain
#             handshake and remember the peer as plaintext. libtorrent's "enabled" policy
#             does the same with a per-peer pe_support flag, flipped before every try and
#             flipped back on success, so retries alternate between the two. When
#             listening, sniff_handshake() decides between the peer-wire parser and an
#             MseResponder, so both kinds of peer get in.
#   require - MseInitiator(provide=RC4) and MseResponder(allow=RC4); close incoming plain
#             handshakes (libtorrent "forced" with allowed_enc_level=rc4; note that
#             "forced" with its default level, both, may still settle on plaintext).
#   off     - plain handshakes only; close connections sniff_handshake() calls encrypted.
# ---------------------------------------------------------------------------------------

#: The 768-bit safe prime every MSE implementation uses; G is 2. Beware: it is *not* the
#: RFC 2409 group 1 prime it resembles, but that prime + 0x90564 (the next safe prime).
MSE_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    16,
)
MSE_GENERATOR = 2
KEY_BYTES = 96  # public keys and S travel as 96-byte big-endian numbers, left-padded
PRIVATE_KEY_BYTES = 20  # the spec asks for at least 128 random bits and suggests 160
MAX_PAD_BYTES = 512  # PadA..PadD are each 0-512 bytes
MAX_IA_BYTES = 0xFFFF  # len(IA) is a 2-byte field
VC = bytes(8)  # verification constant
RC4_DISCARD_BYTES = 1024  # RC4-drop1024: the weak start of the keystream is thrown away
HASH_BYTES = 20

#: The first 20 bytes of a plaintext BitTorrent handshake (BEP 3).
BT_PROTOCOL_HEADER = b"\x13BitTorrent protocol"


class CryptoMethod(enum.IntFlag):
    """The crypto_provide / crypto_select bits (a 32-bit field on the wire)."""

    PLAINTEXT = 0x01  # only the MSE header is obfuscated; the payload is in the clear
    RC4 = 0x02  # the payload continues the RC4 streams


_ALL_METHODS = CryptoMethod.PLAINTEXT | CryptoMethod.RC4


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The MSE handshake succeeded; the peer-wire protocol takes over.

    ``initial_payload`` is the IA the initiator sent (empty on the initiator side);
    ``leftover`` is payload that arrived after the handshake, already decrypted.
    """

    method: Literal["rc4", "plaintext"]
    info_hash: bytes
    initial_payload: bytes
    leftover: bytes


@dataclass(frozen=True, slots=True)
class MseFailed:
    """The handshake failed for good; ``reason`` is one short human line. Close the socket."""

    reason: str


MseEvent = HandshakeComplete | MseFailed


class MseUsageError(RuntimeError):
    """The caller used a core out of order (our bug, never the peer's)."""


class _PeerError(Exception):
    """The peer broke the protocol; turned into MseFailed at the receive_data boundary."""


def sniff_handshake(data: bytes) -> Literal["plaintext", "encrypted"] | None:
    """Tell a plaintext BitTorrent handshake from an MSE one by the first bytes received.

    Returns None while ``data`` is still a prefix of ``BT_PROTOCOL_HEADER``. A random Ya
    starts with those 20 bytes with probability 2**-160, which is why clients (libtorrent,
    Transmission) can listen for both on one port. The bytes are not consumed: feed them
    to the peer-wire parser or to an ``MseResponder`` afterwards.
    """
    head = data[: len(BT_PROTOCOL_HEADER)]
    if BT_PROTOCOL_HEADER.startswith(head):
        return "plaintext" if len(head) == len(BT_PROTOCOL_HEADER) else None
    return "encrypted"


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def stream_key_hash(info_hash: bytes) -> bytes:
    """HASH('req2', SKEY): what a responder's lookup is keyed by (see ``MseResponder``)."""
    return _sha1(b"req2", info_hash)


class _Rc4:
    """One direction's RC4-drop1024 keystream; it runs on across calls, never restarts."""

    __slots__ = ("_ctx",)

    def __init__(self, key: bytes) -> None:
        self._ctx: CipherContext = Cipher(ARC4(key), mode=None).encryptor()
        self._ctx.update(bytes(RC4_DISCARD_BYTES))

    def apply(self, data: bytes) -> bytes:
        return self._ctx.update(data)


def _pick_pad_len(randbytes: Callable[[int], bytes]) -> int:
    # The modulo bias (65536 % 513) is irrelevant: pad lengths only blur packet sizes.
    return int.from_bytes(randbytes(2), "big") % (MAX_PAD_BYTES + 1)


class _State(enum.Enum):
    AWAIT_KEY = "await peer public key"
    SYNC = "synchronising"
    SKEY = "await stream key hash"  # responder only
    CRYPTO = "await crypto field"
    PAD = "await pad"
    IA = "await initial payload"  # responder only
    DONE = "done"
    FAILED = "failed"


class _Core:
    """What both ends share: DH keys, buffers, the event queue and the payload ciphers."""

    __slots__ = (
        "_buf",
        "_dec",
        "_enc",
        "_events",
        "_method",
        "_out",
        "_private",
        "_randbytes",
        "_secret",
        "_state",
    )

    def __init__(self, randbytes: Callable[[int], bytes]) -> None:
        self._randbytes = randbytes
        self._private = int.from_bytes(randbytes(PRIVATE_KEY_BYTES), "big")
        self._buf = bytearray()
        self._out = bytearray()
        self._events: deque[MseEvent] = deque()
        self._state = _State.AWAIT_KEY
        self._secret = b""
        self._enc: _Rc4 | None = None  # our outgoing stream (keyA if we initiated)
        self._dec: _Rc4 | None = None  # the peer's stream
        self._method: CryptoMethod | None = None

    # -- the h11-shaped surface -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the socket; ``b""`` means the peer closed its side.

        Never raises on hostile input: a misbehaving peer yields ``MseFailed``.
        Raises ``MseUsageError`` if called after ``HandshakeComplete`` (use ``decrypt``).
        """
        if self._state is _State.DONE:
            raise MseUsageError("handshake complete: pass further bytes to decrypt()")
        if self._state is _State.FAILED:
            return
        if not data:
            self._fail("peer closed the connection during the MSE handshake")
            return
        self._buf += data
        try:
            self._advance()
        except _PeerError as exc:
            self._fail(str(exc))

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket now (possibly empty)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> MseEvent | None:
        """The next event, or None if more data is needed (or everything was reported)."""
        return self._events.popleft() if self._events else None

    @property
    def complete(self) -> bool:
        return self._state is _State.DONE

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    def encrypt(self, data: bytes) -> bytes:
        """Prepare payload for the wire (identity when plaintext was selected)."""
        return self._payload_cipher(self._enc, data)

    def decrypt(self, data: bytes) -> bytes:
        """Recover payload from the wire (identity when plaintext was selected)."""
        return self._payload_cipher(self._dec, data)

    # -- internals -------------------------------------------------------------------------

    def _payload_cipher(self, cipher: _Rc4 | None, data: bytes) -> bytes:
        if self._state is not _State.DONE:
            raise MseUsageError("encrypt()/decrypt() are only available after HandshakeComplete")
        return data if cipher is None else cipher.apply(data)

    def _advance(self) -> None:
        raise NotImplementedError

    def _fail(self, reason: str) -> None:
        self._state = _State.FAILED
        self._buf.clear()
        self._out.clear()
        self._enc = self._dec = None
        self._events.append(MseFailed(reason))

    def _take(self, n: int) -> bytes:
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        return chunk

    # Built-in pow() rather than cryptography's DH API: that API draws private keys from
    # the OS itself (no injected randomness, so no seeded simulations) and works with
    # full-size exponents. A 160-bit exponent mod P costs about 0.35 ms here; a whole
    # handshake, both keys included, under 2 ms of CPU per side.
    def _public_key_and_pad(self) -> bytes:
        public = pow(MSE_GENERATOR, self._private, MSE_PRIME)
        return public.to_bytes(KEY_BYTES, "big") + self._randbytes(_pick_pad_len(self._randbytes))

    def _agree(self, peer_key: bytes) -> None:
        peer = int.from_bytes(peer_key, "big")
        # 0, 1 and P-1 (and anything >= P) force S into a tiny subgroup, letting a
        # middlebox fix the keys; libtorrent rejects the same set.
        if not 2 <= peer <= MSE_PRIME - 2:
            raise _PeerError("peer sent a degenerate Diffie-Hellman public key")
        shared = pow(peer, self._private, MSE_PRIME)
        # S is hashed as exactly 96 bytes: a short big-endian export here would break
        # one handshake in 256 (whenever S has a leading zero byte).
        self._secret = shared.to_bytes(KEY_BYTES, "big")

    def _scan(self, marker: bytes, what: str) -> bool:
        """Drop bytes up to and including ``marker`` if it starts within the pad window."""
        window = MAX_PAD_BYTES + len(marker)
        at = self._buf.find(marker, 0, window)
        if at < 0:
            if len(self._buf) >= window:
                raise _PeerError(f"{what} not found within {window} bytes of the peer's key")
            return False
        del self._buf[: at + len(marker)]
        return True

    def _finish(self, info_hash: bytes, initial_payload: bytes) -> None:
        method = self._method
        assert method is not None
        if method == CryptoMethod.PLAINTEXT:
            self._enc = self._dec = None
        leftover = self._take(len(self._buf))
        if self._dec is not None:
            leftover = self._dec.apply(leftover)
        self._state = _State.DONE
        self._events.append(
            HandshakeComplete(
                method="rc4" if method == CryptoMethod.RC4 else "plaintext",
                info_hash=info_hash,
                initial_payload=initial_payload,
                leftover=leftover,
            )
        )


def _check_methods(methods: CryptoMethod, what: str) -> CryptoMethod:
    bits = int(methods)
    if not bits or bits & ~int(_ALL_METHODS):
        raise ValueError(f"{what} must be a non-empty mix of PLAINTEXT and RC4")
    return CryptoMethod(bits)


class MseInitiator(_Core):
    """The connecting side (A). Its first ``data_to_send()`` already holds Ya and PadA.

    Args:
        info_hash: the torrent's 20-byte v1 info-hash (SKEY).
        provide: methods we accept for the payload; the responder picks one.
        initial_payload: IA, sent RC4-encrypted inside step 3 (typically our 68-byte
            BitTorrent handshake, which saves a round trip, as libtorrent does).
        randbytes: randomness source (``os.urandom`` in production).
    """

    __slots__ = ("_info_hash", "_initial_payload", "_pad_left", "_provide", "_vc_marker")

    def __init__(
        self,
        info_hash: bytes,
        *,
        provide: CryptoMethod = _ALL_METHODS,
        initial_payload: bytes = b"",
        randbytes: Callable[[int], bytes],
    ) -> None:
        if len(info_hash) != HASH_BYTES:
            raise ValueError("info_hash must be 20 bytes")
        if len(initial_payload) > MAX_IA_BYTES:
            raise ValueError(f"initial_payload must be at most {MAX_IA_BYTES} bytes")
        super().__init__(randbytes)
        self._info_hash = bytes(info_hash)
        self._provide = _check_methods(provide, "provide")
        self._initial_payload = bytes(initial_payload)
        self._vc_marker = b""
        self._pad_left = 0
        self._out += self._public_key_and_pad()

    def _advance(self) -> None:
        while True:
            state = self._state
            if state is _State.AWAIT_KEY:
                if len(self._buf) < KEY_BYTES:
                    return
                self._agree(self._take(KEY_BYTES))
                self._send_step3()
                self._state = _State.SYNC
            elif state is _State.SYNC:
                if not self._scan(self._vc_marker, "encrypted verification constant"):
                    return
                self._state = _State.CRYPTO
            elif state is _State.CRYPTO:
                if len(self._buf) < 6:
                    return
                assert self._dec is not None
                field = self._dec.apply(self._take(6))
                self._method = self._selected(int.from_bytes(field[:4], "big"))
                self._pad_left = int.from_bytes(field[4:], "big")
                if self._pad_left > MAX_PAD_BYTES:
                    raise _PeerError(f"PadD of {self._pad_left} bytes exceeds {MAX_PAD_BYTES}")
                self._state = _State.PAD
            elif state is _State.PAD:
                if len(self._buf) < self._pad_left:
                    return
                assert self._dec is not None
                self._dec.apply(self._take(self._pad_left))  # keeps the keystream aligned
                self._finish(self._info_hash, b"")
                return
            else:
                return

    def _send_step3(self) -> None:
        secret, skey = self._secret, self._info_hash
        self._enc = _Rc4(_sha1(b"keyA", secret, skey))
        self._dec = _Rc4(_sha1(b"keyB", secret, skey))
        # B's stream starts with ENCRYPT(VC); encrypting 8 zero bytes ourselves both gives
        # the pattern to scan for and leaves our copy of B's stream just past it.
        self._vc_marker = self._dec.apply(VC)
        pad_c = bytes(_pick_pad_len(self._randbytes))  # spec: zeroed when only padding
        ia = self._initial_payload
        self._out += _sha1(b"req1", secret)
        self._out += _xor(stream_key_hash(skey), _sha1(b"req3", secret))
        self._out += self._enc.apply(
            VC
            + int(self._provide).to_bytes(4, "big")
            + len(pad_c).to_bytes(2, "big")
            + pad_c
            + len(ia).to_bytes(2, "big")
            + ia
        )

    def _selected(self, select: int) -> CryptoMethod:
        if select not in (CryptoMethod.PLAINTEXT, CryptoMethod.RC4):
            raise _PeerError(f"peer's crypto_select {select:#x} is not exactly one method")
        method = CryptoMethod(select)
        if not method & self._provide:
            raise _PeerError(f"peer selected {method.name}, which we did not provide")
        return method


class MseResponder(_Core):
    """The accepting side (B). Feed it the connection's bytes from the very first one.

    Args:
        accept_hashes: the info-hashes we serve, either as a collection or as a lookup
            ``f(HASH('req2', info_hash)) -> info_hash | None`` (build its table with
            ``stream_key_hash``), so a node serving many torrents matches in O(1).
        allow: payload methods we accept from the initiator's crypto_provide.
        prefer: the method chosen when the initiator provides several we allow. We
            default to RC4 (the peer asked for obfuscation); libtorrent picks plaintext
            unless its ``prefer_rc4`` setting is on.
        randbytes: randomness source (``os.urandom`` in production).
    """

    __slots__ = ("_allow", "_ia_len", "_lookup", "_pad_left", "_prefer", "_skey")

    def __init__(
        self,
        accept_hashes: Callable[[bytes], bytes | None] | Iterable[bytes],
        *,
        allow: CryptoMethod = _ALL_METHODS,
        prefer: CryptoMethod = CryptoMethod.RC4,
        randbytes: Callable[[int], bytes],
    ) -> None:
        super().__init__(randbytes)
        if isinstance(accept_hashes, bytes | bytearray):
            raise TypeError("accept_hashes takes a collection of info-hashes or a lookup")
        if callable(accept_hashes):
            self._lookup: Callable[[bytes], bytes | None] = accept_hashes
        else:
            table: dict[bytes, bytes] = {}
            for info_hash in accept_hashes:
                if len(info_hash) != HASH_BYTES:
                    raise ValueError("accepted info-hashes must be 20 bytes")
                table[stream_key_hash(info_hash)] = bytes(info_hash)
            self._lookup = table.get
        self._allow = _check_methods(allow, "allow")
        if prefer not in (CryptoMethod.PLAINTEXT, CryptoMethod.RC4):
            raise ValueError("prefer must be exactly one of PLAINTEXT and RC4")
        self._prefer = CryptoMethod(prefer)
        self._skey = b""
        self._pad_left = 0
        self._ia_len = 0

    def _advance(self) -> None:
        while True:
            state = self._state
            if state is _State.AWAIT_KEY:
                if len(self._buf) < KEY_BYTES:
                    return
                self._agree(self._take(KEY_BYTES))
                self._out += self._public_key_and_pad()
                self._state = _State.SYNC
            elif state is _State.SYNC:
                if not self._scan(_sha1(b"req1", self._secret), "HASH('req1', S)"):
                    return
                self._state = _State.SKEY
            elif state is _State.SKEY:
                if len(self._buf) < HASH_BYTES:
                    return
                self._identify_torrent(self._take(HASH_BYTES))
                self._state = _State.CRYPTO
            elif state is _State.CRYPTO:
                if len(self._buf) < len(VC) + 6:
                    return
                self._negotiate(self._take(len(VC) + 6))
                self._state = _State.PAD
            elif state is _State.PAD:
                # PadC is followed by len(IA); read both at once.
                if len(self._buf) < self._pad_left + 2:
                    return
                assert self._dec is not None
                tail = self._dec.apply(self._take(self._pad_left + 2))
                self._ia_len = int.from_bytes(tail[-2:], "big")
                self._state = _State.IA
            elif state is _State.IA:
                if len(self._buf) < self._ia_len:
                    return
                assert self._dec is not None
                initial_payload = self._dec.apply(self._take(self._ia_len))
                self._finish(self._skey, initial_payload)
                return
            else:
                return

    def _identify_torrent(self, obfuscated: bytes) -> None:
        skey = self._lookup(_xor(obfuscated, _sha1(b"req3", self._secret)))
        if skey is None:
            raise _PeerError("peer asked for a torrent we do not serve")
        self._skey = skey
        self._enc = _Rc4(_sha1(b"keyB", self._secret, skey))
        self._dec = _Rc4(_sha1(b"keyA", self._secret, skey))

    def _negotiate(self, field: bytes) -> None:
        assert self._dec is not None and self._enc is not None
        plain = self._dec.apply(field)
        if plain[:8] != VC:
            raise _PeerError("verification constant did not decrypt to zeros")
        provide = int.from_bytes(plain[8:12], "big")
        self._pad_left = int.from_bytes(plain[12:14], "big")
        if self._pad_left > MAX_PAD_BYTES:
            raise _PeerError(f"PadC of {self._pad_left} bytes exceeds {MAX_PAD_BYTES}")
        if not provide & _ALL_METHODS:
            raise _PeerError(f"peer's crypto_provide {provide:#x} names no known method")
        common = CryptoMethod(provide & self._allow)  # reserved bits are ignored
        if not common:
            raise _PeerError(f"peer's crypto_provide {provide:#x} has no method we allow")
        # common holds one or both methods; with both, the preference decides.
        method = self._prefer if common & self._prefer else common
        self._method = method
        # Step 4 goes out now, before PadC and IA arrive: it depends on neither, and the
        # initiator may be waiting for it (libtorrent answers at the same point).
        pad_d = bytes(_pick_pad_len(self._randbytes))
        self._out += self._enc.apply(
            VC + int(method).to_bytes(4, "big") + len(pad_d).to_bytes(2, "big") + pad_d
        )
