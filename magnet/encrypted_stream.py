"""An MSE/PE-encrypted byte stream: one connection's bytes through the handshake, then RC4.

The one wrapper both ends use: the resolver dials through it (``magnet.resolution``) and
serve answers through it (``magnet.service``). ``magnet.mse`` owns the handshake itself;
this module only sequences it with the payload on a stream. Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

from magnet.mse import MseFailed, MseInitiator, MseResponder

__all__ = ["EncryptedStream"]


class EncryptedStream:
    """One connection's bytes through MSE/PE: the handshake, then the payload cipher.

    A byte-stream layer between the socket and the peer wire, for either end (give it an
    ``MseInitiator`` or an ``MseResponder``):

    * ``receive_data(wire)`` returns the plaintext for the peer wire: ``b""`` while the
      handshake runs, then the initial payload and whatever followed it, then each read
      decrypted. Never raises on hostile input.
    * ``send(plaintext)`` queues payload: held while the handshake runs (the resolver's
      extension handshake waits there), encrypted once it is complete.
    * ``data_to_send()`` is what to write now (handshake steps and payload, in order);
      call it after constructing and after every ``receive_data`` or ``send``.
    * ``failure`` is None, or why the handshake failed: then close the socket (a dialler
      may redial in plaintext, see the policies above); nothing more is sent or received.
    """

    __slots__ = ("_core", "_held", "_out", "failure")

    def __init__(self, core: MseInitiator | MseResponder) -> None:
        self._core = core
        self._out = bytearray(core.data_to_send())
        self._held = bytearray()  # payload queued before the handshake completed
        self.failure: str | None = None

    @property
    def complete(self) -> bool:
        """The handshake is done: payload flows (RC4, or plaintext if that was selected)."""
        return self._core.complete

    def receive_data(self, data: bytes) -> bytes:
        """Bytes read from the socket -> plaintext for the peer wire (maybe ``b""``).

        ``b""`` (end of stream) during the handshake fails it; after, it returns ``b""``
        and the caller tells the peer wire about the end itself.
        """
        core = self._core
        if core.complete:
            return core.decrypt(data)
        if self.failure is not None:
            return b""
        core.receive_data(data)
        self._out += core.data_to_send()
        event = core.next_event()
        if isinstance(event, MseFailed):
            self.failure = event.reason
            self._held.clear()
            self._out.clear()
            return b""
        if event is None:
            return b""
        if self._held:
            self._out += core.encrypt(bytes(self._held))
            self._held.clear()
        return event.initial_payload + event.leftover

    def send(self, data: bytes) -> None:
        """Queue plaintext payload for the peer (dropped once the handshake failed)."""
        if self._core.complete:
            self._out += self._core.encrypt(data)
        elif self.failure is None:
            self._held += data

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket now (possibly empty)."""
        out = bytes(self._out)
        self._out.clear()
        return out
