"""Prometheus metrics: one collector per (registry, namespace), plain values per reloader.

prometheus-client's labelled children cost about 0.5-1 KB each (a lock and a value object per
series, per histogram bucket), which made metrics the largest part of a reloader. Here a
reloader's series are plain slotted numbers, written only from the event loop (gauges may be
set from any thread: a single store), and one custom collector turns every live reloader's
numbers into metric families at scrape time. Names, types and labels are what
prometheus-client would expose; each reloader has its own ``config`` label value, and two live
reloaders with the same name on one registry would overwrite each other, so that is refused.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["FailureMetrics", "ReloaderMetrics", "RolloutMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_COUNT_BUCKETS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)


class Value:
    """One counter or gauge series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class Hist:
    """One histogram series: per-bucket counts (not cumulative), sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def samples(self) -> tuple[list[tuple[str, float]], float]:
        buckets, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append((_le(bound), float(running)))
        return buckets, self.sum


S = TypeVar("S", Value, Hist)


class Labelled(Generic[S]):
    """Series of one family for one reloader, keyed by the family's extra label values."""

    __slots__ = ("_make", "series")
    _make: Callable[[], S]
    series: Mapping[tuple[str, ...], S]

    def __init__(self, make: Callable[[], S]) -> None:
        self._make = make
        self.series = _NO_SERIES  # most families of most reloaders never get a series

    def labels(self, *values: str) -> S:
        series = self.series
        found = series.get(values)
        if found is None:
            if not isinstance(series, dict):
                series = self.series = {}
            found = series[values] = self._make()
        return found


_NO_SERIES: Mapping[tuple[str, ...], Any] = MappingProxyType({})


def _latency_hist() -> Hist:
    return Hist(_LATENCY_BUCKETS)


def _count_hist() -> Hist:
    return Hist(_COUNT_BUCKETS)


@dataclass(frozen=True, slots=True)
class FailureMetrics:
    """The failure actor's metrics, for one reloader."""

    failures: Labelled[Value]
    triggered: Labelled[Value]
    duration: Labelled[Hist]
    before_reload: Labelled[Hist]
    cooldown_blocks: Labelled[Value]


@dataclass(frozen=True, slots=True)
class RolloutMetrics:
    """The fleet rollout's metrics, for one reloader (only one with ``rollout=``)."""

    canary: Value = field(default_factory=Value)
    awaiting: Value = field(default_factory=Value)
    verdicts: Labelled[Value] = field(default_factory=lambda: Labelled(Value))
    written: Labelled[Value] = field(default_factory=lambda: Labelled(Value))


class ReloaderMetrics:
    """The series of one reloader, registered with its namespace's collector until closed."""

    __slots__ = (
        "_collector",
        "active_sessions",
        "config_hash",
        "degraded",
        "derived_close_errors",
        "derived_draining",
        "failures",
        "generation",
        "last_ok",
        "last_ok_ts",
        "latency",
        "missed",
        "name",
        "pending",
        "quarantined",
        "reload_total",
        "restart_required",
        "rollbacks",
        "rollout",
        "toolsets",
        "watch_restarts",
    )

    def __init__(
        self,
        name: str,
        registry: CollectorRegistry | None,
        namespace: str,
        *,
        rollout: bool = False,
    ) -> None:
        self.name = name
        self.reload_total = Value()
        self.failures: Labelled[Value] = Labelled(Value)
        self.last_ok = Value()
        self.last_ok_ts = Value()
        self.config_hash: str | None = None
        self.generation = Value()
        self.latency = Hist(_LATENCY_BUCKETS)
        self.restart_required = Value()
        self.watch_restarts = Value()
        self.missed = Value()
        self.active_sessions = Value()
        self.pending = Value()
        self.degraded = Value()
        self.rollbacks: Labelled[Value] = Labelled(Value)
        self.quarantined = Value()
        self.derived_close_errors: Labelled[Value] = Labelled(Value)
        self.derived_draining: Labelled[Value] = Labelled(Value)
        self.toolsets = FailureMetrics(
            failures=Labelled(Value),
            triggered=Labelled(Value),
            duration=Labelled(_latency_hist),
            before_reload=Labelled(_count_hist),
            cooldown_blocks=Labelled(Value),
        )
        # None without a rollout: a reloader pays for the series of the features it uses.
        self.rollout = RolloutMetrics() if rollout else None
        self._collector = _collector_for(REGISTRY if registry is None else registry, namespace)
        self._collector.add(self)

    def failure(self, reason: str) -> None:
        self.failures.labels(reason).inc()
        self.last_ok.set(0)

    def committed(self, generation: int, config_hash: str, timestamp: float) -> None:
        self.config_hash = config_hash
        self.generation.set(generation)
        self.last_ok.set(1)
        self.last_ok_ts.set(timestamp)

    def close(self) -> None:
        """Stop exposing this reloader's series, so the name can be used again."""
        self._collector.remove(self)


Gauge = Callable[[ReloaderMetrics], float]


class _Collector(Collector):
    """Every live reloader of one (registry, namespace), exposed at scrape time."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.live: dict[str, ReloaderMetrics] = {}
        self._lock = threading.Lock()

    def add(self, metrics: ReloaderMetrics) -> None:
        with self._lock:
            if metrics.name in self.live:
                raise ValueError(
                    f"a reloader named {metrics.name!r} is already open on this registry "
                    f"(namespace {self.ns!r}); give each reloader its own name"
                )
            self.live[metrics.name] = metrics

    def remove(self, metrics: ReloaderMetrics) -> None:
        with self._lock:
            if self.live.get(metrics.name) is metrics:
                del self.live[metrics.name]

    def describe(self) -> Iterable[Metric]:
        return [*self._families([]), *self._rollout_families([])]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            live = list(self.live.values())
        rolling = [m for m in live if m.rollout is not None]
        # No reloader with a rollout: no empty rollout families in every scrape either.
        return [*self._families(live), *(self._rollout_families(rolling) if rolling else ())]

    def _rollout_families(self, live: list[ReloaderMetrics]) -> Iterator[Metric]:
        """The fleet rollout's, for the reloaders in ``live`` (each has a rollout)."""
        ns = self.ns
        parts = [(m.name, m.rollout) for m in live if m.rollout is not None]
        canary = GaugeMetricFamily(
            f"{ns}_config_rollout_canary",
            "1 when this replica is the rollout's canary, 0 a follower.",
            labels=["config"],
        )
        awaiting = GaugeMetricFamily(
            f"{ns}_config_rollout_awaiting_verdict",
            "1 while a follower holds a config_hash awaiting its verdict, else 0.",
            labels=["config"],
        )
        for name, part in parts:
            canary.add_metric([name], part.canary.value)
            awaiting.add_metric([name], part.awaiting.value)
        yield canary
        yield awaiting
        counters: tuple[tuple[str, str, Callable[[RolloutMetrics], Labelled[Value]]], ...] = (
            (
                "verdicts_total",
                "Verdicts seen from the store, by verdict (good, bad).",
                lambda part: part.verdicts,
            ),
            (
                "verdicts_written_total",
                "Verdicts written by this replica (the canary), by verdict (good, bad).",
                lambda part: part.written,
            ),
        )
        for suffix, doc, get in counters:
            fam = CounterMetricFamily(
                f"{ns}_config_rollout_{suffix}", doc, labels=["config", "verdict"]
            )
            for name, part in parts:
                for (verdict,), value in list(get(part).series.items()):
                    fam.add_metric([name, verdict], value.value)
            yield fam

    def _families(self, live: list[ReloaderMetrics]) -> Iterator[Metric]:
        ns = self.ns

        def counter(name: str, doc: str, get: Gauge) -> CounterMetricFamily:
            fam = CounterMetricFamily(f"{ns}_{name}", doc, labels=["config"])
            for m in live:
                fam.add_metric([m.name], get(m))
            return fam

        def gauge(name: str, doc: str, get: Gauge) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(f"{ns}_{name}", doc, labels=["config"])
            for m in live:
                fam.add_metric([m.name], get(m))
            return fam

        yield counter(
            "config_reload_total", "Config changes applied.", lambda m: m.reload_total.value
        )
        failures = CounterMetricFamily(
            f"{ns}_config_reload_failures_total",
            "Config versions rejected or unreadable.",
            labels=["config", "reason"],
        )
        for m in live:
            for (reason,), value in m.failures.series.items():
                failures.add_metric([m.name, reason], value.value)
        yield failures
        yield _labelled_counter(
            f"{ns}_derived_close_errors_total",
            "Derived resources (clients, pools) whose close raised; the error is logged.",
            ["resource"],
            live,
            lambda m: m.derived_close_errors,
        )
        draining = GaugeMetricFamily(
            f"{ns}_derived_draining",
            "Replaced derived resources not closed yet (pinned by requests or closing).",
            labels=["config", "resource"],
        )
        for values, series in _labelled(live, lambda m: m.derived_draining):
            draining.add_metric(list(values), series.value)
        yield draining
        yield gauge(
            "config_last_reload_successful",
            "1 if the latest version seen was valid, else 0.",
            lambda m: m.last_ok.value,
        )
        yield gauge(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last applied change.",
            lambda m: m.last_ok_ts.value,
        )
        info = GaugeMetricFamily(
            f"{ns}_config_info",
            "The config in force, by hash (value is 1).",
            labels=["config", "config_hash"],
        )
        for m in live:
            if m.config_hash is not None:
                info.add_metric([m.name, m.config_hash], 1.0)
        yield info
        yield gauge(
            "config_generation", "Generation of the config in force.", lambda m: m.generation.value
        )
        yield _histogram(
            f"{ns}_config_reload_latency_seconds",
            "From a change being seen to its commit.",
            [((m.name,), m.latency) for m in live],
        )
        yield gauge(
            "config_restart_required",
            "Fields whose new value waits for a restart (0 when none).",
            lambda m: m.restart_required.value,
        )
        yield counter("watch_restarts_total", "Watcher restarts.", lambda m: m.watch_restarts.value)
        yield counter(
            "watch_missed_events_total",
            "Changes the safety poll found that the watcher missed.",
            lambda m: m.missed.value,
        )
        yield gauge("active_sessions", "Open gating sessions.", lambda m: m.active_sessions.value)
        yield gauge(
            "pending_reload",
            "1 while a valid change waits for sessions to end, else 0.",
            lambda m: m.pending.value,
        )
        yield gauge(
            "config_degraded",
            "1 while running on the last-known-good copy because the source is invalid.",
            lambda m: m.degraded.value,
        )
        yield _labelled_counter(
            f"{ns}_config_rollbacks_total",
            "Commits condemned on probation and rolled back, by reason (failures, check).",
            ["reason"],
            live,
            lambda m: m.rollbacks,
        )
        yield gauge(
            "config_quarantined",
            "Versions quarantined by probation: never committed again until released.",
            lambda m: m.quarantined.value,
        )
        # The failure counter's names, with the config label every other metric has.
        yield _labelled_counter(
            f"{ns}_toolset_failures_total",
            "Toolset failures recorded.",
            ["toolset"],
            live,
            lambda m: m.toolsets.failures,
        )
        yield _labelled_counter(
            f"{ns}_auto_reload_triggered_total",
            "Auto-reloads set off by persistent toolset failures, by result.",
            ["toolset", "result"],
            live,
            lambda m: m.toolsets.triggered,
        )
        yield _histogram(
            f"{ns}_auto_reload_duration_seconds",
            "Duration of forced re-checks set off by toolset failures.",
            _labelled(live, lambda m: m.toolsets.duration),
            ["result"],
        )
        yield _histogram(
            f"{ns}_consecutive_failures_before_reload",
            "Consecutive failures of a toolset when its auto-reload settled.",
            _labelled(live, lambda m: m.toolsets.before_reload),
            ["toolset"],
        )
        yield _labelled_counter(
            f"{ns}_reload_cooldown_blocks_total",
            "Auto-reloads not started because the toolset's cooldown was active.",
            ["toolset"],
            live,
            lambda m: m.toolsets.cooldown_blocks,
        )


def _labelled_counter(
    name: str,
    doc: str,
    labels: list[str],
    live: list[ReloaderMetrics],
    family: Callable[[ReloaderMetrics], Labelled[Value]],
) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=["config", *labels])
    for values, series in _labelled(live, family):
        fam.add_metric(list(values), series.value)
    return fam


def _labelled(
    live: list[ReloaderMetrics], family: Callable[[ReloaderMetrics], Labelled[S]]
) -> list[tuple[tuple[str, ...], S]]:
    """Every series of a labelled family, with the ``config`` label value first."""
    found: list[tuple[tuple[str, ...], S]] = []
    key: tuple[str, ...]
    for m in live:
        labelled: Labelled[S] = family(m)
        for key in list(labelled.series):
            found.append(((m.name, *key), labelled.series[key]))
    return found


def _histogram(
    name: str,
    doc: str,
    series: Iterable[tuple[tuple[str, ...], Hist]],
    labels: list[str] | None = None,
) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=["config", *(labels or [])])
    for values, hist in list(series):
        buckets, total = hist.samples()
        fam.add_metric(list(values), buckets, total)
    return fam


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Collector]] = (
    weakref.WeakKeyDictionary()
)


def _collector_for(registry: CollectorRegistry, namespace: str) -> _Collector:
    with _lock:
        per_ns = _by_registry.setdefault(registry, {})
        found = per_ns.get(namespace)
        if found is None:
            found = _Collector(namespace)
            registry.register(found)  # raises if another collector owns one of the names
            per_ns[namespace] = found
        return found
