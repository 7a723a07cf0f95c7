"""One worker computes at a time; requests wait in line and can see where they stand.

The machine this runs on may have two cores: running every request at once would make each of
them slow and could exhaust memory. Jobs run one after another on a single worker thread, in
the order they came; a waiting job knows how many jobs are ahead of it, a running one reports
what it is doing (``progress``). The line is bounded: past ``max_waiting`` jobs, ``submit``
raises :class:`QueueFullError` (the server answers 503)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "QueueFullError", "WorkQueue"]

Work = Callable[[Callable[[str], None]], Any]  # called with a progress(message) callback


class QueueFullError(RuntimeError):
    pass


@dataclass(eq=False)
class Job:
    id: str
    label: str
    work: Work = field(repr=False)
    future: Future = field(default_factory=Future, repr=False)
    state: str = "queued"  # queued, running, done, error
    progress: str = "waiting"
    submitted: float = field(default_factory=time.perf_counter)
    started: float | None = None
    finished: float | None = None


class WorkQueue:
    """Jobs run in submission order on one daemon thread (started by :meth:`start`)."""

    def __init__(self, max_waiting: int = 32, keep_finished: int = 256) -> None:
        self.max_waiting = max_waiting
        self._waiting: deque[Job] = deque()
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # every job still to be asked about
        self._keep = keep_finished
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._stopped = False
                self._thread = threading.Thread(target=self._run, name="attnlab-serve-worker",
                                                daemon=True)  # fmt: skip
                self._thread.start()

    def stop(self) -> None:
        """Finish the running job, drop the waiting ones (their futures are cancelled)."""
        with self._cond:
            self._stopped = True
            while self._waiting:
                self._waiting.popleft().future.cancel()
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def submit(self, work: Work, label: str) -> Job:
        with self._cond:
            if self._stopped or self._thread is None:
                raise RuntimeError("the work queue is not running")
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(
                    f"the server is busy: {len(self._waiting)} requests are waiting (the limit "
                    "is attnlab serve --max-waiting); try again in a moment"
                )
            job = Job(f"j{next(self._ids)}", label, work)
            self._waiting.append(job)
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep + self.max_waiting + 1:
                oldest = next(iter(self._jobs.values()))
                if oldest.state in ("queued", "running"):
                    break
                self._jobs.popitem(last=False)
            self._cond.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def ahead(self, job: Job) -> int:
        """Jobs that will run before ``job``: the running one and those waiting in front."""
        with self._cond:
            if job.state != "queued":
                return 0
            running = sum(j.state == "running" for j in self._jobs.values())
            return running + next((i for i, j in enumerate(self._waiting) if j is job), 0)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job = self._waiting.popleft()
                job.state, job.started = "running", time.perf_counter()
            if not job.future.set_running_or_notify_cancel():
                continue

            def progress(message: str, job: Job = job) -> None:
                job.progress = message

            try:
                result = job.work(progress)
            except BaseException as err:  # handed to whoever waits for the job
                job.state, job.finished = "error", time.perf_counter()
                job.future.set_exception(err)
            else:
                job.state, job.finished = "done", time.perf_counter()
                job.future.set_result(result)
