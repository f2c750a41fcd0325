"""Prometheus metrics, one family set per (registry, namespace), one ``config`` label each.

prometheus-client refuses to register a name twice on a registry, so the families are created
once per registry and namespace and shared; every reloader writes only its own ``config`` label
values and removes them when it closes. Two live reloaders with the same name on one registry
would overwrite each other, so that is refused up front.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["FailureMetrics", "ReloaderMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_COUNT_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 1000)


class _Families:
    def __init__(self, registry: CollectorRegistry, ns: str) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"{ns}_{name}", doc, ["config", *labels], registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(f"{ns}_{name}", doc, ["config", *labels], registry=registry)

        self.reload_total = counter("config_reload_total", "Config changes applied.")
        self.failures = counter(
            "config_reload_failures_total", "Config versions rejected or unreadable.", "reason"
        )
        self.last_ok = gauge(
            "config_last_reload_successful", "1 if the latest version seen was valid, else 0."
        )
        self.last_ok_ts = gauge(
            "config_last_reload_success_timestamp_seconds", "Unix time of the last applied change."
        )
        self.info = gauge(
            "config_info", "The config in force, by hash (value is 1).", "config_hash"
        )
        self.generation = gauge("config_generation", "Generation of the config in force.")
        self.latency = Histogram(
            f"{ns}_config_reload_latency_seconds",
            "From a change being seen to its commit.",
            ["config"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.restart_required = gauge(
            "config_restart_required",
            "Fields whose new value waits for a restart (0 when none).",
        )
        self.watch_restarts = counter("watch_restarts_total", "File watcher restarts.")
        self.missed = counter(
            "watch_missed_events_total", "Changes the safety poll found that the watcher missed."
        )
        self.active_sessions = gauge("active_sessions", "Open gating sessions.")
        self.degraded = gauge(
            "config_degraded",
            "1 while running on the last-known-good copy because the source is invalid.",
        )
        self.pending = gauge(
            "pending_reload", "1 while a valid change waits for sessions to end, else 0."
        )
        # BR-HAPI-190's names (the spec has no config label; we add it like everywhere else).
        self.toolset_failures = counter(
            "toolset_failures_total", "Toolset failures recorded.", "toolset"
        )
        self.triggered = counter(
            "auto_reload_triggered_total",
            "Auto-reloads set off by persistent toolset failures, by result.",
            "toolset",
            "result",
        )
        self.auto_duration = Histogram(
            f"{ns}_auto_reload_duration_seconds",
            "Duration of forced re-checks set off by toolset failures.",
            ["config", "result"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.before_reload = Histogram(
            f"{ns}_consecutive_failures_before_reload",
            "Consecutive failures of a toolset when its auto-reload settled.",
            ["config", "toolset"],
            buckets=_COUNT_BUCKETS,
            registry=registry,
        )
        self.cooldown_blocks = counter(
            "reload_cooldown_blocks_total",
            "Auto-reloads not started because the toolset's cooldown was active.",
            "toolset",
        )
        self.active: set[str] = set()


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Families]] = (
    weakref.WeakKeyDictionary()
)


class ReloaderMetrics:
    """The metric handles of one reloader, bound to its ``config`` label."""

    def __init__(self, name: str, registry: CollectorRegistry | None, namespace: str) -> None:
        registry = REGISTRY if registry is None else registry
        with _lock:
            per_ns = _by_registry.setdefault(registry, {})
            fam = per_ns.get(namespace) or per_ns.setdefault(
                namespace, _Families(registry, namespace)
            )
            if name in fam.active:
                raise ValueError(
                    f"a reloader named {name!r} is already open on this registry "
                    f"(namespace {namespace!r}); give each reloader its own name"
                )
            fam.active.add(name)
        self._fam = fam
        self._name = name
        self._hash: str | None = None
        self.reload_total = fam.reload_total.labels(name)
        self.last_ok = fam.last_ok.labels(name)
        self.last_ok_ts = fam.last_ok_ts.labels(name)
        self.generation = fam.generation.labels(name)
        self.latency = fam.latency.labels(name)
        self.restart_required = fam.restart_required.labels(name)
        self.watch_restarts = fam.watch_restarts.labels(name)
        self.missed = fam.missed.labels(name)
        self.active_sessions = fam.active_sessions.labels(name)
        self.degraded = fam.degraded.labels(name)
        self.pending = fam.pending.labels(name)
        self.toolsets = FailureMetrics(
            failures=_Bound(fam.toolset_failures, name),
            triggered=_Bound(fam.triggered, name),
            duration=_Bound(fam.auto_duration, name),
            before_reload=_Bound(fam.before_reload, name),
            cooldown_blocks=_Bound(fam.cooldown_blocks, name),
        )
        self.reload_total.inc(0)

    def failure(self, reason: str) -> None:
        self._fam.failures.labels(self._name, reason).inc()
        self.last_ok.set(0)

    def committed(self, generation: int, config_hash: str, timestamp: float) -> None:
        if self._hash is not None and self._hash != config_hash:
            self._fam.info.remove(self._name, self._hash)
        self._fam.info.labels(self._name, config_hash).set(1)
        self._hash = config_hash
        self.generation.set(generation)
        self.last_ok.set(1)
        self.last_ok_ts.set(timestamp)

    def close(self) -> None:
        """Drop this reloader's label values so the name can be used again."""
        fam = self._fam
        with _lock:
            fam.active.discard(self._name)
        for family in (
            fam.reload_total,
            fam.last_ok,
            fam.last_ok_ts,
            fam.generation,
            fam.latency,
            fam.restart_required,
            fam.watch_restarts,
            fam.missed,
            fam.active_sessions,
            fam.pending,
            fam.degraded,
        ):
            _remove(family, self._name)
        if self._hash is not None:
            _remove(fam.info, self._name, self._hash)
        for family in (
            fam.failures,
            fam.toolset_failures,
            fam.triggered,
            fam.auto_duration,
            fam.before_reload,
            fam.cooldown_blocks,
        ):
            for labels in _label_sets(family):
                if labels[0] == self._name:
                    _remove(family, *labels)


Family = TypeVar("Family", Counter, Gauge, Histogram)


class _Bound(Generic[Family]):
    """A family with this reloader's ``config`` label already filled in."""

    __slots__ = ("_family", "_name")
    _family: Family
    _name: str

    def __init__(self, family: Family, name: str) -> None:
        self._family = family
        self._name = name

    def labels(self, *values: str) -> Family:
        return self._family.labels(self._name, *values)


@dataclass(frozen=True, slots=True)
class FailureMetrics:
    """The failure actor's metrics (BR-HAPI-190 names), bound to one reloader."""

    failures: _Bound[Counter]
    triggered: _Bound[Counter]
    duration: _Bound[Histogram]
    before_reload: _Bound[Histogram]
    cooldown_blocks: _Bound[Counter]


def _label_sets(family: Counter | Gauge | Histogram) -> list[tuple[str, ...]]:
    with family._lock:
        return [tuple(labels) for labels in family._metrics]


def _remove(family: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        family.remove(*labels)
