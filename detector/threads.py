"""One BLAS thread for the small dense products of a micro-batch.

OpenBLAS runs even a (2,048 × 32) · (32 × 8) product on all its threads, and their spinning
afterwards costs more CPU than the product. Featurising batches of long texts (bench/stages.py
``featurise_long_text``, 2 cores) ran ~8,500 records per CPU-second with two BLAS threads and
~13,500 with one: the nearest-centroid and condition products are the only dense ones left.

>>> import numpy as np
>>> with one_blas_thread():
...     all(lib["num_threads"] == 1 for lib in _controller().info() if lib["user_api"] == "blas")
True
"""

from __future__ import annotations

from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries once (~2 ms)


def one_blas_thread():
    """Context manager: BLAS limited to one thread inside, restored after (~0.1 ms in and out)."""
    return _controller().limit(limits=1, user_api="blas")
