"""The skew alert of deploy/prometheus/hotreload-rules.yaml, evaluated on what real reloaders
export, without Prometheus (tests/prometheus runs the rules in promtool and in Prometheus).

Two reloaders with the same name on two registries stand for two worker processes (each
process has its own registry) of one scrape job. The PromQL expression is read from the rules
file; its metric and labels must be what the reloaders export, and its count must say 2
versions while the workers differ and 1 once they agree.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from hotreload import HotReloader
from hotreload.testing import write_in_place
from tests.integration.conftest import SettingsSchema

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "hotreload-rules.yaml"
SHAPE = re.compile(r"count by \(job, (\w+)\) \(count by \(job, (\w+), (\w+)\) \((\w+)\)\) > 1")


def skew_expression() -> str:
    [group] = yaml.safe_load(RULES.read_text())["groups"]
    [rule] = [r for r in group["rules"] if r["alert"] == "HotreloadConfigHashSkew"]
    expr: str = rule["expr"]
    return expr


def versions_by_config(registries: list[CollectorRegistry], metric: str) -> dict[str, int]:
    """``count by (job, config) (count by (job, config, config_hash) (metric))`` over every
    registry (one job: Prometheus adds the label when it scrapes them)."""
    hashes: dict[str, set[str]] = defaultdict(set)
    for registry in registries:
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == metric and sample.value == 1:
                    hashes[sample.labels["config"]].add(sample.labels["config_hash"])
    return {config: len(found) for config, found in hashes.items()}


async def test_readme_skew_alert_counts_versions_across_workers(
    tmp_path: Path, settings: SettingsSchema
) -> None:
    query = skew_expression()
    shape = SHAPE.fullmatch(query.strip())
    assert shape is not None, query
    outer, label, hash_label, metric = shape.groups()
    assert (outer, label, hash_label) == ("config", "config", "config_hash")
    assert metric == "hotreload_config_info"
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("model: gpt-4\n")
    two.write_text("model: gpt-4o\n")  # a worker that has not seen the change yet, say
    registries = [CollectorRegistry(), CollectorRegistry()]
    async with (
        HotReloader(one, schema=settings, name="api", registry=registries[0]) as first,
        HotReloader(two, schema=settings, name="api", registry=registries[1]) as second,
    ):
        assert versions_by_config(registries, metric) == {"api": 2}  # the alert fires
        write_in_place(one, "model: gpt-4o\n")
        await first.wait_for_generation(2, timeout=10)
        assert first.snapshot.config_hash == second.snapshot.config_hash
        assert versions_by_config(registries, metric) == {"api": 1}  # and resolves
