"""``magnetar scrape``: a tracker's counts for some info-hashes (``magnet.io.trackers.scrape``)."""

from __future__ import annotations

from typing import Annotated

import typer

from magnet.cli.options import EXIT_NOT_FOUND, JsonOption, fail, run

__all__ = ["scrape"]


def scrape(
    tracker: Annotated[
        str, typer.Argument(metavar="URL", help="udp://, http:// or https:// tracker.")
    ],
    info_hashes: Annotated[
        list[str], typer.Argument(metavar="INFOHASH...", help="Info-hashes or magnet links.")
    ],
    timeout: Annotated[
        float, typer.Option(help="Give up after this many seconds.", min=0.1)
    ] = 15.0,
    json_out: JsonOption = False,
) -> None:
    """Ask a tracker how many seeders and leechers it knows for each info-hash.

    Example: magnetar scrape udp://tracker.example:6969/announce 0123...4567
    """
    import asyncio
    import json

    from magnet.io.trackers import TrackerError
    from magnet.io.trackers import scrape as tracker_scrape
    from magnet.trackers.urls import parse_tracker_url
    from magnet.uri import MagnetError, parse_info_hash_or_magnet

    try:
        parse_tracker_url(tracker)  # a URL that names no tracker is bad input, not a failure
    except TrackerError as exc:
        reason = exc.reason
        fail(reason if reason.startswith("bad tracker URL") else f"{tracker}: {reason}")
    keys = []
    for text in info_hashes:
        try:
            keys.append(parse_info_hash_or_magnet(text).dht_key)
        except MagnetError as exc:
            fail(f"bad info-hash {text!r}: {exc}")
    try:
        # The scrape keeps to ``timeout`` itself; the extra second guards against one that
        # does not.
        stats = run(asyncio.wait_for(tracker_scrape(tracker, keys, timeout=timeout), timeout + 1))
    except TrackerError as exc:
        fail(f"{tracker}: {exc.reason}", EXIT_NOT_FOUND)
    except TimeoutError:
        fail(f"{tracker}: no answer in {timeout:g} s", EXIT_NOT_FOUND)
    for key in keys:
        st = stats.get(key)
        if json_out:
            record: dict[str, object] = {"info_hash": key.hex(), "known": st is not None}
            if st is not None:
                record.update(seeders=st.seeders, leechers=st.leechers, completed=st.completed)
            typer.echo(json.dumps(record))
        elif st is None:
            typer.echo(f"{key.hex()} not known to the tracker")
        else:
            counts = f"seeders {st.seeders} leechers {st.leechers} completed {st.completed}"
            typer.echo(f"{key.hex()} {counts}")
