"""Root pytest hooks: long regressions marked ``slow`` run only with ``MLS_SLOW=1``."""

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MLS_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="long regression; run with MLS_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
