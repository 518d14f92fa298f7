"""Number hooks for ``json.JSONDecoder`` that refuse what other languages do not read.

Python's ``json`` takes ``NaN``, ``Infinity`` and numbers past a float's range (``1e999``
as inf): no node sends them, other languages refuse them, and arithmetic on them fails
(``math.ceil``). The node refuses them in requests (``node.http.wire``), its client in
answers (``node.client.transport``): a ``ValueError``, as any text that is not JSON.

>>> import json
>>> decoder = json.JSONDecoder(parse_constant=refuse_constant, parse_float=finite_float)
>>> decoder.decode('[1.5]')
[1.5]
>>> decoder.decode('[1e999]')
Traceback (most recent call last):
ValueError: number 1e999 is out of range
>>> decoder.decode('NaN')
Traceback (most recent call last):
ValueError: NaN is not a JSON number
"""

from __future__ import annotations

import math
from typing import NoReturn


def refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value
