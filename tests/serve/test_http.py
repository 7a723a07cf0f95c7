"""`attnlab serve` over HTTP on loopback: results, exact tiles, limits and refusals."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from attnlab.inspection.pretrained import load_folder
from attnlab.inspection.report import inspect

from .conftest import long_text


def test_a_text_becomes_a_result_page_and_the_same_text_hits_the_cache(server):
    state = server.run_job({"model": 0, "text": "The animal didn't cross the street"})
    assert state["state"] == "done" and state["view"].startswith("/view/")
    status, headers, page = server.request("GET", state["view"])
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"attnlab serve: attention on all-MiniLM-L6-v2" in page and b'"animal"' in page
    again = server.post_job({"model": 0, "text": "The animal didn't cross the street"})
    assert again == (200, {"state": "done", "view": state["view"]})  # cached: no new job


def test_exact_tiles_equal_the_attention_map(server):
    text = long_text(600)
    state = server.run_job({"model": 1, "text": text})
    key = state["view"].rsplit("/", 1)[1]
    status, headers, body = server.request(
        "GET", f"/api/tile/{key}?text=0&layer=1&head=2&q0=100&q1=164&k0=500&k1=600"
    )
    assert status == 200 and headers["x-tile-shape"] == "64,100"
    got = torch.frombuffer(bytearray(body), dtype=torch.float32).view(64, 100)
    model, tokenizer = load_folder(server.folder)
    report = inspect(text, model=model, tokenizer=tokenizer)
    want = report.maps[report.layers[1]].rows(100, 164, heads=2)[0, 0, :, 500:600]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    for bad, name in [("q0=164&q1=100", "queries"), ("q0=0&q1=601", "queries"),
                      ("q0=0&q1=513", "queries")]:  # fmt: skip
        status, _, body = server.request(
            "GET", f"/api/tile/{key}?text=0&layer=1&head=2&{bad}&k0=0&k1=10"
        )
        assert status == 422 and json.loads(body)["error"].startswith(name), body
    status, _, body = server.request(
        "GET", f"/api/tile/{key}?text=0&layer=9&head=0&q0=0&q1=1&k0=0&k1=1"
    )
    assert status == 422 and json.loads(body)["error"] == "layer must lie in [0, 2); got 9"
    status, _, body = server.request(
        "GET", "/api/tile/nosuchkey?text=0&layer=0&head=0&q0=0&q1=1&k0=0&k1=1"
    )
    assert status == 404 and "cache" in json.loads(body)["error"]


def test_an_oversized_body_gets_413_with_the_limit(server):
    big = json.dumps({"model": 0, "text": "word " * 60_000}).encode()  # 300 KB > 256 KiB
    status, _, body = server.request("POST", "/api/jobs", big, {"Content-Type": "application/json"})
    assert status == 413
    assert json.loads(body)["error"] == (
        f"the request body is {len(big):,} bytes; the limit is 262,144 bytes "
        "(attnlab serve --max-body-kb)"
    )
    # Without a Content-Length (chunked), it is cut off while it streams in.
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    status, _, body = server.request(
        "POST", "/api/jobs", chunks, {"Content-Type": "application/json"}
    )
    assert status == 413 and "exceeds the limit of 262,144 bytes" in json.loads(body)["error"]


def test_token_counts_are_limited_with_the_limit_named(server):
    status, body = server.post_job({"model": 1, "text": long_text(4097)})
    assert status == 422 and body["error"] == (
        "text is 4,097 tokens long; at most 4,096 are taken (this server's limit (attnlab serve "
        "--max-tokens))"
    )
    status, body = server.post_job({"model": 0, "text": "x", "compare": long_text(600)})
    assert status == 422 and body["error"] == (
        "compare is 600 tokens long; at most 512 are taken (the positions of all-MiniLM-L6-v2 "
        "(bundled))"
    )


@pytest.mark.parametrize("data, message", [
    ({"model": "/etc/passwd", "text": "x"}, "model must be an index in [0, 2) into the server's model list (models are named at start, never by the page); got '/etc/passwd'"),
    ({"model": "../long-bert", "text": "x"}, "model must be an index in [0, 2)"),
    ({"model": 2, "text": "x"}, "model must be an index in [0, 2)"),
    ({"model": True, "text": "x"}, "model must be an index"),
    ({"model": 0, "text": "  "}, "text must be a non-empty text; got '  '"),
    ({"model": 0, "text": "x", "path": "/etc"}, "unknown field(s) ['path']"),
    ({"model": 0, "text": "x", "target": "y"}, "target is the decoder side of encoder–decoder models"),
    (["x"], "the body must be a JSON object"),
])  # fmt: skip
def test_bad_requests_are_refused_with_the_field_named(server, data, message):
    status, body = server.post_job(data)
    assert status == 422 and body["error"].startswith(message), body


def test_not_json_is_refused(server):
    status, _, body = server.request("POST", "/api/jobs", b"text=x", {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in json.loads(body)["error"]
    status, _, body = server.request(
        "POST", "/api/jobs", b"{", {"Content-Type": "application/json"}
    )
    assert status == 400 and json.loads(body)["error"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("path", [
    "/assets/..%2Fapp.py", "/assets/..%2F..%2Fserve%2Fapp.py", "/assets/%2e%2e%2fmodels.py",
    "/assets/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/../../etc/passwd", "/etc/passwd",
    "/view/..%2F..%2Fetc%2Fpasswd", "/assets/%2Fetc%2Fpasswd", "/assets/attention.js",
])  # fmt: skip
def test_path_traversal_finds_nothing(server, path):
    status, _, body = server.request("GET", path)
    assert status == 404 and b"import" not in body and b"root:" not in body


def test_the_assets_are_served_and_other_hosts_refused(server):
    status, headers, body = server.request("GET", "/assets/serve.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b"/api/jobs" in body and "default-src 'self'" in headers["content-security-policy"]
    status, _, _ = server.request("GET", "/", headers={"Host": "attacker.example"})
    assert status == 400  # a rebound DNS name does not reach the server


@pytest.mark.slow
def test_bounded_load_on_loopback(server):
    """200 requests, 8 at a time, on 127.0.0.1 only: submissions of 20 texts (each computed
    once, then cached) and exact tiles; every one answered without an error."""
    assert server.host == "127.0.0.1"
    state = server.run_job({"model": 1, "text": long_text(300)})
    key = state["view"].rsplit("/", 1)[1]

    def one(i: int) -> tuple[str, float]:
        start = time.perf_counter()
        if i % 2:
            q = 8 * (i % 30)
            status, _, body = server.request(
                "GET",
                f"/api/tile/{key}?text=0&layer={i % 2}&head={i % 4}&q0={q}&q1={q + 64}&k0=0&k1=300",
            )
            assert status == 200 and len(body) == 64 * 300 * 4
            kind = "tile"
        else:
            final = server.run_job({"model": 1, "text": f"request {i % 20} " + long_text(40)})
            assert final["state"] == "done", final
            kind = "job"
        return kind, time.perf_counter() - start

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(200)))
    for kind in ("job", "tile"):
        times = sorted(t for k, t in results if k == kind)
        p95 = times[int(0.95 * (len(times) - 1))]
        print(
            f"{kind}: {len(times)} requests, median {statistics.median(times) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms"
        )
    assert len(results) == 200
