"""What a test needs and cannot have here (root, another user, a namespace of its own, a
tmpfs, a browser): a skip on a developer's machine, and a failure in CI (``CI=true``),
where a silently skipped test would hide what it checks.

    if shutil.which("setpriv") is None:
        unavailable("needs setpriv")
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether the tests run in CI, where every test must run."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, for ``reason``; fail it in CI."""
    if in_ci():
        pytest.fail(f"{reason}: this test must run in CI")
    pytest.skip(reason)
