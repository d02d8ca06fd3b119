"""CPU thread limit for the world's many-small-op workloads.

Sphere tracing and SDF sampling are thousands of small torch ops. On the 2-core machines this
project targets, two OpenMP threads were at best 1.6x faster than one, and 10-50x *slower*
whenever another process was busy on the other core (the threads spin waiting for each other).
So the world functions run with one intra-op thread by default and restore the setting after.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Union

import torch

__all__ = ["DEFAULT_CPU_THREADS", "limit_cpu_threads"]

DEFAULT_CPU_THREADS: int | None = 1


@contextmanager
def limit_cpu_threads(n: int | None, device: Union[str, torch.device] = "cpu") -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads (None: leave torch's setting; no effect for
    non-CPU devices); the previous setting is restored afterwards."""
    old = torch.get_num_threads()
    if n is None or torch.device(device).type != "cpu" or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
