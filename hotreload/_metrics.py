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

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ReloaderMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


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
        ):
            _remove(family, self._name)
        if self._hash is not None:
            _remove(fam.info, self._name, self._hash)
        for labels in list(_label_sets(fam.failures)):
            if labels[0] == self._name:
                _remove(fam.failures, *labels)


def _label_sets(family: Counter) -> list[tuple[str, ...]]:
    return [tuple(labels) for labels in family._metrics]


def _remove(family: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        family.remove(*labels)
