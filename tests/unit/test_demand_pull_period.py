"""The GCS's demand pull period: fast for small clusters, bounded load for large ones."""

import pytest

from rayctl.runtime.bootstrap import demand_pull_period_ms


@pytest.mark.parametrize(
    ("max_workers", "period_ms"),
    [(0, 100), (2, 100), (99, 100), (100, 100), (101, 101), (640, 640), (1000, 1000), (1001, 1000)],
)
def test_one_millisecond_per_allowed_worker_between_100_and_1000(max_workers, period_ms):
    assert demand_pull_period_ms(max_workers) == period_ms
