"""The server's parts on their own: the work queue, the capture cache, the command line."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import pytest

from attnlab.cli.main import main
from attnlab.serve.cache import CaptureCache
from attnlab.serve.queue import QueueFullError, WorkQueue


def test_jobs_run_one_at_a_time_in_order_and_know_their_place():
    queue = WorkQueue(max_waiting=4)
    queue.start()
    gate, running, most, order = threading.Event(), [0], [0], []
    lock = threading.Lock()

    def work(n):
        def run(progress):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            progress(f"job {n} halfway")
            if n == 0:
                gate.wait(10)
            time.sleep(0.01)
            with lock:
                running[0] -= 1
                order.append(n)
            return n

        return run

    try:
        jobs = [queue.submit(work(0), label="0")]
        deadline = time.monotonic() + 10
        while jobs[0].state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.005)
        jobs += [queue.submit(work(n), label=str(n)) for n in range(1, 5)]
        assert [queue.ahead(j) for j in jobs] == [0, 1, 2, 3, 4]
        assert jobs[0].progress == "job 0 halfway" and jobs[1].state == "queued"
        with pytest.raises(QueueFullError, match="4 requests are waiting"):
            queue.submit(work(9), label="9")
        gate.set()
        assert [j.future.result(10) for j in jobs] == [0, 1, 2, 3, 4]
        assert order == [0, 1, 2, 3, 4] and most[0] == 1  # one worker, in submission order
        assert queue.get(jobs[3].id) is jobs[3] and jobs[3].state == "done"
    finally:
        gate.set()
        queue.stop()


def test_a_failing_job_hands_its_error_to_the_waiter_and_the_worker_goes_on():
    queue = WorkQueue()
    queue.start()
    try:
        bad = queue.submit(lambda progress: 1 / 0, label="bad")
        good = queue.submit(lambda progress: "fine", label="good")
        with pytest.raises(ZeroDivisionError):
            bad.future.result(10)
        assert good.future.result(10) == "fine" and bad.state == "error"
    finally:
        queue.stop()


@dataclass
class Blob:
    nbytes: int


def test_the_cache_stays_within_its_budget_dropping_the_least_recently_used():
    cache = CaptureCache(100)
    for key, size in [("a", 40), ("b", 40)]:
        cache.put(key, Blob(size))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", Blob(40))  # over budget: b goes
    assert "b" not in cache and "a" in cache and "c" in cache and cache.nbytes == 80
    cache.put("c", Blob(61))  # replaced, not counted twice: a goes
    assert "a" not in cache and cache.nbytes == 61
    with pytest.raises(ValueError, match=r"needs 0\.0 MB, over the cache budget .*--cache-mb"):
        cache.put("d", Blob(101))
    assert "c" in cache and len(cache) == 1


def test_a_taken_port_is_refused_before_any_model_loads(capsys, monkeypatch):
    import attnlab.serve.models as models

    monkeypatch.setattr(models, "load_models", lambda *a, **k: pytest.fail("a model loaded"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"attnlab serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_another_host_is_served_with_a_warning(capsys, monkeypatch):
    import attnlab.serve.models as models
    import attnlab.serve.server as server

    seen = {}
    monkeypatch.setattr(models, "load_models", lambda paths: ["a model"])
    monkeypatch.setattr("attnlab.serve.app.create_app", lambda m, limits, allowed_hosts: seen.update(
        hosts=allowed_hosts, limits=limits))  # fmt: skip
    monkeypatch.setattr(server, "run", lambda app, sock, on_ready: on_ready())
    assert main(["serve", "--host", "0.0.0.0", "--port", "0", "--max-body-kb", "8"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("attnlab serve: warning: --host 0.0.0.0 lets other machines reach")
    assert "serving on http://0.0.0.0:" in out and seen["hosts"] == ["*"]
    assert seen["limits"].max_body == 8192
    assert main(["serve", "--port", "0"]) == 0
    assert capsys.readouterr().err == "" and seen["hosts"] == ("127.0.0.1", "localhost", "::1")


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for phrase in ("never name a file", "exact weights", "127.0.0.1", "--cache-mb", "one worker"):
        assert phrase.lower() in out.lower(), phrase
