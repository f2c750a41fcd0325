"""The metrics module on its own: series values, histogram buckets as prometheus reads them,
and one collector per (registry, namespace) that exposes every live reloader by name."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hotreload._metrics import Hist, Labelled, ReloaderMetrics, Value


def test_a_value_counts_and_sets() -> None:
    v = Value()
    v.inc()
    v.inc(2.5)
    assert v.value == 3.5
    v.set(1)
    assert v.value == 1


def test_a_histogram_puts_a_value_on_a_bound_in_that_bucket_and_reads_cumulatively() -> None:
    h = Hist((1.0, 2.0))
    for amount in (0.5, 1.0, 1.5, 2.0, 9.0):
        h.observe(amount)
    buckets, total = h.samples()
    assert buckets == [("1.0", 2.0), ("2.0", 4.0), ("+Inf", 5.0)]
    assert total == 14.0


def test_labelled_series_are_made_once_per_label_values() -> None:
    family: Labelled[Value] = Labelled(Value)
    family.labels("a").inc()
    family.labels("a").inc()
    family.labels("b").inc()
    assert {k: s.value for k, s in family.series.items()} == {("a",): 2.0, ("b",): 1.0}


def test_families_start_empty_and_never_share_series() -> None:
    # An unused family holds no dict of its own: the first series must not land in a shared one.
    one: Labelled[Value] = Labelled(Value)
    two: Labelled[Value] = Labelled(Value)
    assert dict(one.series) == dict(two.series) == {}
    one.labels("a").inc()
    assert dict(two.series) == {}
    assert two.labels("a") is not one.labels("a")
    assert Labelled(Value).series == {}


def test_live_reloaders_are_exposed_by_name_until_closed() -> None:
    registry = CollectorRegistry()
    one = ReloaderMetrics("one", registry, "ns")
    two = ReloaderMetrics("two", registry, "ns")
    one.committed(3, "abc", 1.7e9)
    two.failure("parse")
    one.toolsets.triggered.labels("kubernetes", "config_changed").inc()
    one.toolsets.before_reload.labels("kubernetes").observe(3)
    sample = registry.get_sample_value
    assert sample("ns_config_generation", {"config": "one"}) == 3
    assert sample("ns_config_info", {"config": "one", "config_hash": "abc"}) == 1
    assert sample("ns_config_last_reload_successful", {"config": "one"}) == 1
    assert sample("ns_config_last_reload_success_timestamp_seconds", {"config": "one"}) == 1.7e9
    assert sample("ns_config_last_reload_successful", {"config": "two"}) == 0
    assert sample("ns_config_reload_failures_total", {"config": "two", "reason": "parse"}) == 1
    labels = {"config": "one", "toolset": "kubernetes", "result": "config_changed"}
    assert sample("ns_auto_reload_triggered_total", labels) == 1
    bucket = {"config": "one", "toolset": "kubernetes", "le": "3.0"}
    assert sample("ns_consecutive_failures_before_reload_bucket", bucket) == 1
    assert sample("ns_config_info", {"config": "two", "config_hash": "abc"}) is None
    one.close()
    assert sample("ns_config_generation", {"config": "one"}) is None
    assert sample("ns_config_generation", {"config": "two"}) == 0
    two.close()
    assert b"config=" not in generate_latest(registry)


def test_two_live_reloaders_may_not_share_a_name_but_a_closed_name_is_free() -> None:
    registry = CollectorRegistry()
    first = ReloaderMetrics("same", registry, "ns")
    with pytest.raises(ValueError, match="'same' is already open"):
        ReloaderMetrics("same", registry, "ns")
    other_namespace = ReloaderMetrics("same", registry, "other")
    first.close()
    first.close()  # idempotent, and does not remove a newer one of the same name
    again = ReloaderMetrics("same", registry, "ns")
    first.close()
    assert registry.get_sample_value("ns_config_generation", {"config": "same"}) == 0
    again.close()
    other_namespace.close()
