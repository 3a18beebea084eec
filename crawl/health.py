"""Crawl health: one summary per period saying how well the crawl is going, and why not.

An operator whose crawl finds little wants to know where it stops: nobody answers (network,
firewall, bogus bootstrap), nodes answer but few support BEP 51, supporting nodes hold
little, or our rate limits hold us back. ``HealthMeter`` turns cumulative counters into
per-period rates; it is pure (fed ``now``), the driver prints its dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from crawl.scheduler import CrawlStats

__all__ = ["Counters", "HealthMeter", "format_health"]


@dataclass(frozen=True, slots=True)
class Counters:
    """A cumulative snapshot of the crawl's counters."""

    sent: int
    replies: int
    failures: dict[str, int]
    nodes_met: int
    bep51_yes: int
    bep51_no: int
    samples: int
    unique: int  # info-hashes found this run (new to the database)
    passive: int  # sightings from get_peers/announce_peer queries to us
    metadata_ok: int
    metadata_failed: int
    refused: int
    bytes_out: int
    bytes_in: int

    @classmethod
    def of(
        cls,
        st: CrawlStats,
        *,
        unique: int,
        passive: int,
        metadata_ok: int,
        metadata_failed: int,
    ) -> Counters:
        return cls(
            st.sent,
            st.replies,
            dict(st.failures),
            st.nodes_met,
            st.bep51_yes,
            st.bep51_no,
            st.samples,
            unique,
            passive,
            metadata_ok,
            metadata_failed,
            st.refused,
            st.bytes_out,
            st.bytes_in,
        )


class HealthMeter:
    """Rates over the period since the previous ``summary`` call."""

    def __init__(self, now: float, start: Counters) -> None:
        self.started = now
        self._at = now
        self._prev = start

    def summary(
        self, now: float, cur: Counters, *, extra: dict[str, int] | None = None
    ) -> dict[str, object]:
        prev = self._prev
        span = max(now - self._at, 1e-9)
        sent = cur.sent - prev.sent
        replies = cur.replies - prev.replies
        errors = {
            k: v - prev.failures.get(k, 0)
            for k, v in cur.failures.items()
            if v - prev.failures.get(k, 0) > 0
        }
        # KRPC errors are answers too: the node is alive, it just refused the query.
        error_answers = sum(v for k, v in errors.items() if k.startswith("error"))
        finished = replies + sum(errors.values())
        decided = cur.bep51_yes + cur.bep51_no
        out: dict[str, object] = {
            "elapsed_s": round(now - self.started, 1),
            "new_per_min": round((cur.unique - prev.unique) * 60.0 / span, 1),
            "unique": cur.unique,
            "nodes_met": cur.nodes_met,
            "queries_per_s": round(sent / span, 1),
            "answering": round((replies + error_answers) / finished, 3) if finished else None,
            "bep51": round(cur.bep51_yes / decided, 3) if decided else None,
            "bep51_nodes": cur.bep51_yes,
            "samples": cur.samples,
            "passive": cur.passive,
            "metadata": cur.metadata_ok,
            "metadata_failed": cur.metadata_failed,
            "errors": errors,
            "refused_addresses": cur.refused - prev.refused,
            "kib_per_s": round(
                ((cur.bytes_out - prev.bytes_out) + (cur.bytes_in - prev.bytes_in)) / 1024 / span,
                1,
            ),
        }
        if extra:
            out.update(extra)
        self._at = now
        self._prev = cur
        return out


def format_health(h: dict[str, object]) -> str:
    """The summary as one human line."""

    def pct(v: object) -> str:
        return f"{float(v) * 100:.0f}%" if isinstance(v, int | float) else "n/a"

    errors = h.get("errors") or {}
    assert isinstance(errors, dict)
    err = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    refused = h.get("refused_addresses", 0)
    tail = (
        f"; {refused} learned addresses refused (private/bogon: --allow-private for a lab)"
        if refused
        else ""
    )
    return (
        f"[{h['elapsed_s']}s] {h['unique']} info-hashes (+{h['new_per_min']}/min), "
        f"{h['nodes_met']} nodes met, {h['queries_per_s']} q/s, "
        f"answering {pct(h['answering'])}, BEP 51 {pct(h['bep51'])} "
        f"({h['bep51_nodes']} nodes), {h['samples']} samples, {h['passive']} passive, "
        f"metadata {h['metadata']} ok/{h['metadata_failed']} failed, "
        f"{h['kib_per_s']} KiB/s; errors: {err}{tail}"
    )
