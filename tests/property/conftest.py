"""Hypothesis profiles: ``ci`` (the default) is derandomized, so a run is reproducible and
the suite stays fast; ``explore`` (``HYPOTHESIS_PROFILE=explore``) searches with fresh random
seeds and more examples. Both print the reproduction blob of a failure."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    print_blob=True,
    report_multiple_bugs=False,  # shrink one failure, fast, rather than every distinct one
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    # ``nox -s explore``: at least 10,000 steps (examples stop early at random, so the
    # average run is about half of stateful_step_count).
    max_examples=400,
    stateful_step_count=50,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
