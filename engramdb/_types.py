"""Array aliases shared across the package."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatMatrix = NDArray[np.float32]
"""A float32 matrix of shape (n, dim): one row per vector."""

FloatVector = NDArray[np.float32]
"""A float32 vector of shape (dim,)."""

Float64Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

JSONValue = Any
"""A value that ``json.dumps`` accepts."""
