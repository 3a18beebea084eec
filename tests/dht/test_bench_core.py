"""scripts/bench_core.py measures what it says: every query it feeds is answered."""

from __future__ import annotations

import re

import pytest

from scripts.bench_core import main


@pytest.mark.parametrize(
    ("extra", "exact"),
    [
        ([], True),  # read-only queriers: the answers are all the core sends
        (["--table", "300", "--no-ro"], False),  # queriers may join the table: pings too
    ],
)
def test_every_query_is_answered_and_nothing_dropped(
    extra: list[str], exact: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--queries", "3000", "--sources", "50", "--repeat", "2", *extra]) == 0
    line = capsys.readouterr().out
    sent = re.search(r"sent (\d+), dropped (\{.*\})", line)
    assert sent is not None, line
    # Loopback sources are not rate-limited: two rounds of 3000 queries, 6000 answers.
    count = int(sent.group(1))
    assert (count == 6000 if exact else count >= 6000) and sent.group(2) == "{}", line
