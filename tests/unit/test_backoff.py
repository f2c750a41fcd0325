"""The one backoff rule shared by the watcher hub, source watches and etcd reconnects."""

from __future__ import annotations

from hotreload._backoff import backoff_delay


def test_doubles_from_first_up_to_the_ceiling() -> None:
    assert [backoff_delay(n, 0.05, 0.5) for n in range(1, 7)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff_delay(10_000, 0.05, 5.0) == 5.0  # no overflow however long the outage


def test_jitter_stays_within_half_to_all_of_the_delay() -> None:
    delays = {backoff_delay(3, 1.0, 10.0, jitter=True) for _ in range(200)}
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(delays) > 1
