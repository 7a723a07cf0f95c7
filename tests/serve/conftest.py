"""One `attnlab serve` for the whole package, started as a user would (the real command, real
uvicorn, a free loopback port), offering the bundled MiniLM (index 0) and a tiny random-weight
BERT saved as a Hugging Face folder (index 1) whose 4,096 positions allow long documents."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers as tf
from tests.inspection.model_folders import bert_tokenizer

ROOT = Path(__file__).resolve().parents[2]
LONG_WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "the",
    "dog",
    "ran",
    "to",
    "it",
    "while",
    "we",
    "were",
    "there",
    "but",
    "you",
    "had",
    "one",
    "more",
    "day",
    "for",
    "this",
]


def save_long_bert(folder: Path) -> None:
    torch.manual_seed(0)
    config = tf.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=96, initializer_range=0.3,
                           max_position_embeddings=4096)  # fmt: skip
    tf.BertModel(config).eval().save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)


def long_text(tokens: int) -> str:
    """A text of exactly ``tokens`` BERT tokens ([CLS] and [SEP] included)."""
    return " ".join(LONG_WORDS[i % len(LONG_WORDS)] for i in range(tokens - 2))


class Server:
    def __init__(self, url: str, host: str, port: int, folder: Path) -> None:
        self.url, self.host, self.port, self.folder = url, host, port, folder

    def request(self, method: str, path: str, body=None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:  # fmt: skip
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            chunked = body is not None and not isinstance(body, bytes)  # an iterable: chunked
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def post_job(self, data: object) -> tuple[int, dict]:
        status, _, body = self.request("POST", "/api/jobs", json.dumps(data).encode(),
                                       {"Content-Type": "application/json"})  # fmt: skip
        return status, json.loads(body)

    def run_job(self, data: object, timeout: float = 120) -> dict:
        """Submit and wait for the job: its final state."""
        status, state = self.post_job(data)
        assert status in (200, 202), state
        deadline = time.monotonic() + timeout
        while state["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, state
            time.sleep(0.02)
            status, _, body = self.request("GET", f"/api/jobs/{state['job']}")
            state = json.loads(body)
        return state


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    folder, log = base / "long-bert", (base / "stderr.log").open("w")
    save_long_bert(folder)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "serve", "--model", str(folder), "--port", "0",
         "--max-tokens", "4096", "--cache-mb", "512"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,  # a full pipe would block it
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "serving on" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"attnlab serve exited: {(base / 'stderr.log').read_text()}")
            assert time.monotonic() < deadline, "attnlab serve did not start in 120 s"
        match = re.search(r"http://(127\.0\.0\.1):(\d+)/", line)
        assert match, line
        yield Server(match.group(0), match.group(1), int(match.group(2)), folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
