"""The shipped alert rules and their promtool tests, and what the metric names in them are."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "hotreload-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "hotreload-rules.test.yaml"
#: A metric name of the default namespace, in an expression or an annotation's query.
METRIC = re.compile(r"\bhotreload_\w+")


def metric_names(text: str) -> set[str]:
    return set(METRIC.findall(text))


def for_durations(text: str, duration: str) -> str:
    """The rules with every ``for:`` set to ``duration`` (an end-to-end test cannot wait 5m)."""
    shortened, count = re.subn(r"(?m)^(\s+for: )\S+$", rf"\g<1>{duration}", text)
    assert count >= 3, "the rules' for: lines moved"
    return shortened
