"""Generation on a vLLM server over its OpenAI-compatible API (``engine = "vllm"``).

vLLM pins its own transformers, so it never shares the project's process: the server runs
in its own environment, either started here (``start_server``: 127.0.0.1, a free port, a
bounded start-up, its log kept where the caller says, stopped on exit) or already running
(``[engine] url``). Requests carry the prompt as token ids rendered by the project's own
tokenizer and chat template, so both engines see the same tokens; the answer's text and
whether it ended its turn (``finish_reason`` "stop") come back as HF's ``complete`` gives
them. Requests go out ``concurrency`` at a time; a failed one is retried ``retries``
times, then the stage stops with one line naming the server (and its log).

What maps one to one: ``max_new_tokens`` (``max_tokens``), temperature, top-p, the
per-chunk seed, the end-of-turn tokens (``stop_token_ids``). What does not: sampled
answers are the engine's own random stream (greedy answers agree token for token up to
float rounding between the two kernels).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from weightsteer.core.config import Section
from weightsteer.core.errors import UserError

PYTHON_ENV = "WEIGHTSTEER_VLLM_PYTHON"  # the vLLM environment's python
LOCAL_ENV = Path(".vllm/bin/python")  # where `make vllm` puts it
SERVED = "base"  # the served model's name in requests


class EngineConfig(Section):
    """The ``[engine]`` section: what generates text (the persona data, for now)."""

    name: Literal["hf", "vllm"] = Field(
        "hf", description="hf: transformers generate in this process; vllm: a vLLM server"
    )
    url: str | None = Field(
        None, description="a running vLLM server (http://host:port); none: start one here"
    )
    start_timeout: float = Field(300, gt=0, description="seconds a started server may take")
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    retries: int = Field(2, ge=0, description="retries of a failed request")
    args: tuple[str, ...] = Field(
        (), description="more `vllm serve` arguments (--tensor-parallel-size 2, ...)"
    )


def vllm_python() -> str:
    """The python of the vLLM environment: ``$WEIGHTSTEER_VLLM_PYTHON``, else ``.vllm``."""
    given = os.environ.get(PYTHON_ENV)
    path = Path(given) if given else LOCAL_ENV
    if not path.is_file():
        raise UserError(
            f"no vLLM environment at {path}: run `make vllm` (or set {PYTHON_ENV} to the "
            "python of an environment with vllm installed)"
        )
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def check_server(url: str) -> str:
    """``url`` without a trailing slash, if a vLLM server answers there; else one line."""
    url = url.rstrip("/")
    try:
        _get(f"{url}/v1/models")
    except (OSError, ValueError) as e:
        raise UserError(
            f"no vLLM server answers at {url} ({e}); start one or fix [engine] url"
        ) from None
    return url


@contextmanager
def start_server(
    model_dir: str | Path, log: Path, cfg: EngineConfig, *, port: int | None = None
) -> Iterator[str]:
    """A vLLM server of ``model_dir`` (float32) on 127.0.0.1, its output in ``log``; yields
    its URL and stops it on exit."""
    python = vllm_python()
    port = port or free_port()
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise UserError(f"port {port} on 127.0.0.1 is in use; free it or leave it to us")
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port),
           "--dtype", "float32", "--seed", "0", *cfg.args]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(proc, url, log, cfg.start_timeout)
        yield url
    finally:
        _stop(proc)


def _wait(proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the vLLM server exited while starting (code {proc.returncode}); "
                            f"its log: {log}")  # fmt: skip
        try:
            _get(f"{url}/v1/models", timeout=2)
            return
        except (OSError, ValueError):
            time.sleep(1)
    raise UserError(f"the vLLM server did not start within {timeout:g} s; its log: {log}")


def _stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def served_complete(
    url: str,
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: int,
    ends: Sequence[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    cfg: EngineConfig | None = None,
    log: Path | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[tuple[str, bool]]:
    """``(text, finished)`` for each prompt (token ids) from the server at ``url``."""
    cfg = cfg or EngineConfig()

    def one(i: int) -> tuple[str, bool]:
        body = {"model": SERVED, "prompt": list(prompts[i]), "max_tokens": max_new_tokens,
                "temperature": temperature, "top_p": top_p, "seed": seed * 1_000_003 + i,
                "stop_token_ids": list(ends), "skip_special_tokens": True}  # fmt: skip
        err: Exception | None = None
        for _ in range(cfg.retries + 1):
            try:
                req = urllib.request.Request(
                    f"{url}/v1/completions", json.dumps(body).encode(),
                    {"Content-Type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(req, timeout=600) as r:
                    choice = json.loads(r.read())["choices"][0]
                if on_done:
                    on_done(1)
                return choice["text"].strip(), choice.get("finish_reason") == "stop"
            except (OSError, ValueError, KeyError) as e:
                err = e
                time.sleep(0.5)
        where = f"; its log: {log}" if log else ""
        raise UserError(f"the vLLM server at {url} failed a request {cfg.retries + 1} times "
                        f"({err}){where}")  # fmt: skip

    with ThreadPoolExecutor(cfg.concurrency) as pool:
        return list(pool.map(one, range(len(prompts))))
