import pytest

from ui3d.world.threads import limit_cpu_threads


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    # many small ops: one thread is faster, and far faster when the other core is busy
    with limit_cpu_threads(1):
        yield
