"""Tracker URLs: transport, host, port, BEP 41 URLData and the time guards, or one clear error."""

from __future__ import annotations

import pytest

from magnet.trackers.messages import TrackerError
from magnet.trackers.urls import GRACE_S, parse_tracker_url


def test_udp_url() -> None:
    t = parse_tracker_url(" UDP://tracker.example:6969/announce?key=a%20b ")
    assert t.is_udp and t.scheme == "udp"
    assert (t.host, t.port) == ("tracker.example", 6969)
    assert t.url_data == b"/announce?key=a%20b"
    # UDP: the core's own reason must win, so the caller's cap waits longer.
    assert (t.outer_grace_s, t.inner_grace_s) == (GRACE_S, 0.0)


def test_http_url_keeps_the_text_given() -> None:
    url = "https://[::1]/x/announce.php?passkey=1"
    t = parse_tracker_url(url)
    assert not t.is_udp and t.url == url and t.host == "::1" and t.port is None
    assert (t.outer_grace_s, t.inner_grace_s) == (0.0, GRACE_S)


def test_udp_url_without_a_path_sends_no_url_data() -> None:
    assert parse_tracker_url("udp://127.0.0.1:1").url_data == b""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("wss://t.example/announce", "unsupported scheme 'wss'"),
        ("t.example:80", "unsupported scheme 't.example'"),
        ("no scheme at all", "bad tracker URL"),
        ("udp://t.example/announce", "no port"),
        ("http:///announce", "no host"),
        ("udp://t.example:99999/", "bad tracker URL"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(TrackerError, match=message) as info:
        parse_tracker_url(url)
    assert "\n" not in info.value.reason
