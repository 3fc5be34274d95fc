"""Thread counts that hold up on a shared machine.

Two things made a busy 2-core machine 5–7× slower than an idle one (docs/usage.md#threads):

- OpenMP's worker threads (torch's intra-op pool, scikit-learn's k-means) spin while they wait for
  work.  On cores that other processes also use, a spinning thread takes the time slice that the
  thread it waits for needs.  ``import viewsplit`` therefore sets ``OMP_WAIT_POLICY=PASSIVE`` (sleep
  instead of spin) when torch is not imported yet and the user has not set it (``viewsplit/__init__.py``);
  :func:`passive_wait` says whether it is in force.
- torch's default counts the machine's cores, not the CPUs this process may use, and gives small
  models more threads than they can use.  The default here, :func:`default_threads`, is one thread for
  vector views (small MLPs) and otherwise the CPUs in the process's affinity mask, capped by its
  cgroup's CPU quota.  It depends on the data and the machine, never on the machine's momentary load,
  so a run gives the same numbers whatever else is running (another thread count changes
  floating-point sums).

An explicit ``train.threads`` / ``threads=`` always wins.  :func:`limited` applies a count to torch and
to the BLAS / OpenMP pools of numpy and scikit-learn (threadpoolctl) for a block of work;
:class:`SlowdownWatch` notices a run that has become oversubscribed and says so once.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def passive_wait() -> bool:
    """Whether OpenMP threads sleep rather than spin while idle (set before torch was imported)."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, capped by its cgroup quota (rounded up)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def default_threads(view_shapes: Sequence[Sequence[int]] = ()) -> int:
    """The thread count used when none is given: 1 when every view is a vector, else :func:`usable_cpus`.

    Vector views train small MLPs whose matrix products are too short to share: on this project's
    2-core machine, idle, a short Handwritten MRDD run took 3.3 s to train and 23.1 s to evaluate with one
    thread against 5.8 s and 32.7 s with two (``benchmarks/busy_machine.py``; docs/usage.md#threads).
    Image views train convolutions, which two threads run ≈ 1.8× faster.
    """
    if view_shapes and all(len(shape) == 1 for shape in view_shapes):
        return 1
    return usable_cpus()


def resolve(threads: int | None, view_shapes: Sequence[Sequence[int]] = ()) -> int:
    """``threads`` if given (it always wins), else :func:`default_threads` for these views."""
    return int(threads) if threads else default_threads(view_shapes)


@contextlib.contextmanager
def limited(threads: int | None, view_shapes: Sequence[Sequence[int]] = ()) -> Iterator[None]:
    """Run a block with ``resolve(threads, view_shapes)`` torch threads and BLAS / OpenMP threads
    (numpy, scikit-learn); the previous settings come back afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = resolve(threads, view_shapes)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


class SlowdownWatch:
    """Feed it step durations; once, it logs that the run looks oversubscribed and what to change.

    The reference is the median of the first ``warmup`` steps after ``skip`` (which include start-up
    costs); the check is the median of the last ``warmup`` steps: a run whose steps take ``factor`` times
    as long as they did, or whose 1-minute load average exceeds the usable CPUs by half, is reported
    (only when it runs more than one thread, the setting a user can lower).
    """

    def __init__(self, threads: int, skip: int = 5, warmup: int = 20, factor: float = 3.0, check_every: int = 50):
        self.threads, self.skip, self.warmup, self.factor, self.every = threads, skip, warmup, factor, check_every
        self.times: list[float] = []
        self.reference: float | None = None
        self.said = threads <= 1
        self.last = time.perf_counter()

    def step(self) -> None:
        now = time.perf_counter()
        self.observe(now - self.last)
        self.last = now

    def restart(self, new_phase: bool = False) -> None:
        """Exclude the time since the last step (the trainer calls it after a checkpoint); ``new_phase`` (a
        stage with other step costs) also starts a new reference."""
        self.last = time.perf_counter()
        if new_phase:
            self.times, self.reference = [], None

    def observe(self, seconds: float) -> None:
        if self.said:
            return
        self.times.append(seconds)
        n = len(self.times)
        if self.reference is None:
            if n == self.skip + self.warmup:
                self.reference = _median(self.times[self.skip:])
            return
        if n % self.every:
            return
        recent = _median(self.times[-self.warmup:])
        load, cpus = load_average(), usable_cpus()
        slow = recent > self.factor * self.reference
        busy = load is not None and load > 1.5 * cpus
        if slow or busy:
            self.said = True
            why = (f"steps take {recent / self.reference:.1f}× as long as the first ones" if slow
                   else f"the load average is {load:.1f} on {cpus} usable CPUs")
            spin = "" if passive_wait() else (" OpenMP threads spin here (torch was imported before viewsplit): set "
                                              "OMP_WAIT_POLICY=PASSIVE before starting Python.")
            log.warning(f"the CPUs look oversubscribed ({why}) with {self.threads} threads; other processes share "
                        f"them. If this run is slow, set train.threads=1 (estimators: threads=1).{spin}")


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2]
