"""What the emulated internet looks like: one-way delay per pair of hosts, jitter and loss.

A ``Profile`` is the whole description of a lab network. The base one-way delay of a pair is
drawn once, uniformly in the profile's range, from a ``random.Random`` seeded by the profile's
seed and the two addresses (sorted), so it is the same in both directions, the same whatever
order packets arrive in, and the same from run to run. Jitter and loss are drawn per packet
by the scheduler (``wanlab.schedule``) from its own generator. Sans-IO: no clock, no sockets.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass

__all__ = ["Profile", "ProfileError"]


class ProfileError(ValueError):
    """A profile value out of range or a delay range that does not parse (one human line)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """Delay range and jitter in milliseconds, loss as a probability per packet and direction.

    ``delay_ms=(10, 150)`` draws each pair's base one-way delay in [10, 150] ms; a packet then
    waits that plus a uniform jitter in [0, ``jitter_ms``], so no packet is ever faster than
    the pair's base delay (and a round trip never shorter than twice the range's minimum).
    """

    delay_ms: tuple[float, float] = (10.0, 150.0)
    jitter_ms: float = 0.0
    loss: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        low, high = self.delay_ms
        if not 0 <= low <= high:
            raise ProfileError(f"delay range must satisfy 0 <= min <= max, got {low}-{high} ms")
        if self.jitter_ms < 0:
            raise ProfileError(f"jitter must be >= 0 ms, got {self.jitter_ms}")
        if not 0 <= self.loss < 1:
            raise ProfileError(f"loss must be a probability in [0, 1), got {self.loss}")

    @classmethod
    def parse_delay(cls, text: str) -> tuple[float, float]:
        """``"10-150"`` -> ``(10.0, 150.0)``; ``"40"`` -> ``(40.0, 40.0)`` (milliseconds)."""
        parts = text.split("-")
        try:
            if len(parts) == 1:
                return (float(parts[0]), float(parts[0]))
            if len(parts) == 2:
                return (float(parts[0]), float(parts[1]))
        except ValueError:
            pass
        raise ProfileError(f"delay must be MS or MIN-MAX in milliseconds, got {text!r}")

    def pair_delay_s(self, a: str, b: str) -> float:
        """The base one-way delay between hosts ``a`` and ``b`` in seconds (symmetric)."""
        low, high = self.delay_ms
        if low == high:
            return low / 1000.0
        first, second = sorted((a, b))
        # A str seed is hashed with SHA-512 by random.Random: stable across runs and machines,
        # unlike hash(), which is salted per process.
        pair_rng = random.Random(f"wanlab|{self.seed}|{first}|{second}")
        return pair_rng.uniform(low, high) / 1000.0

    def to_json(self) -> str:
        """The profile as one JSON object (how the lab hands it to the emulator process)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Profile:
        data = json.loads(text)
        low, high = data["delay_ms"]
        return cls(
            delay_ms=(float(low), float(high)),
            jitter_ms=float(data["jitter_ms"]),
            loss=float(data["loss"]),
            seed=int(data["seed"]),
        )
