"""Types of the compiled parser (normflow/data/plain_numbers.c)."""

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer

def parse(data: Buffer, out: NDArray[np.float64], capacity: int, rows_of: Sequence[int], delimiter: str, /) -> int: ...
def count_lines(data: Buffer, /) -> int: ...
