"""Generation on a vLLM server over its OpenAI-compatible API (``engine = "vllm"``).

vLLM pins its own transformers, so it never shares the project's process: the server runs
in its own environment, either started here (``start_server``: 127.0.0.1, a free port, a
bounded start-up, its log kept where the caller says, stopped on exit) or already running
(``[engine] url``). Requests carry the prompt as token ids rendered by the project's own
tokenizer and chat template, and the answer comes back as token ids
(``return_token_ids``), cut after the first end of turn as ``generation.generate_ids``
cuts it, so both engines see and give the same tokens. A request names the base model
or a LoRA adapter (loaded at runtime: ``load_adapter``; ``served.py`` steers with them).
Requests go out ``concurrency`` at a time; a failed one is retried ``retries`` times,
then the stage stops with one line naming the server (and its log).

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
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from weightsteer.core.config import Section
from weightsteer.core.errors import UserError

PYTHON_ENV = "WEIGHTSTEER_VLLM_PYTHON"  # the vLLM environment's python
LOCAL_ENV = Path(".vllm/bin/python")  # where `make vllm` puts it
SERVED = "base"  # the served model's name in requests
# the ranks vLLM's --max-lora-rank accepts (vllm.config.lora.MaxLoRARanks)
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class EngineConfig(Section):
    """The ``[engine]`` section: what generates text (the persona data, for now)."""

    name: Literal["hf", "vllm"] = Field(
        "hf", description="hf: transformers generate in this process; vllm: a vLLM server"
    )
    url: str | None = Field(
        None, description="a running vLLM server (http://host:port); none: start one here"
    )
    start_timeout: float = Field(300, gt=0, description="seconds a started server may take")
    concurrency: int = Field(64, ge=1, description="requests in flight at once")
    retries: int = Field(2, ge=0, description="retries of a failed request")
    args: tuple[str, ...] = Field(
        (), description="more `vllm serve` arguments (--tensor-parallel-size 2, ...)"
    )
    fallback: Literal["hf", "refuse"] = Field(
        "hf",
        description="a method the server cannot apply (activation steering, the dosed "
        "prompt): hf generates its answers here; refuse: the run stops before any stage",
    )
    lora_rank: int | None = Field(
        None,
        ge=1,
        description="the SVD rank of a dense vector served as a LoRA; none: the server's "
        "rank, 2 x train.rank (a larger --max-lora-rank slows every adapter)",
    )
    max_error: float = Field(
        0.01,
        ge=0,
        description="a dense vector whose LoRA is off by more (relative Frobenius error) "
        "is generated with transformers instead of served",
    )
    max_loras: int = Field(8, ge=1, description="adapters in one batch on the server")
    kv_cache_gib: float | None = Field(
        None,
        gt=0,
        description="KV cache of a server started here; none: 2 GiB on a machine without "
        "CUDA (vLLM's CPU backend would reserve 92% of memory), vLLM's default on a GPU",
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


@dataclass
class Server:
    """A vLLM server started here: its URL, process and log."""

    url: str
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """Stop it at once (SIGKILL to its process group), as a crash would."""
        import signal

        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def lora_bucket(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds ``rank``."""
    bucket = next((b for b in VLLM_MAX_LORA_RANKS if b >= rank), None)
    if bucket is None:
        raise UserError(
            f"a LoRA of rank {rank} is above vLLM's largest --max-lora-rank "
            f"({VLLM_MAX_LORA_RANKS[-1]}); lower [engine] lora_rank or train.rank"
        )
    return bucket


@contextmanager
def start_server(
    model_dir: str | Path,
    log: Path,
    cfg: EngineConfig,
    *,
    port: int | None = None,
    lora_rank: int | None = None,
    loras: dict[str, Path] | None = None,
) -> Iterator[Server]:
    """A vLLM server of ``model_dir`` (float32) on 127.0.0.1, its output in ``log``; yields
    it and stops it on exit. ``lora_rank``: LoRA adapters up to that rank may be loaded
    at runtime (``load_adapter``); ``loras``: adapters served from the start by name."""
    python = vllm_python()
    port = port or free_port()
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise UserError(f"port {port} on 127.0.0.1 is in use; free it or leave it to us")
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port),
           "--dtype", "float32", "--seed", "0", *cfg.args]  # fmt: skip
    cmd += _kv_cache_args(cfg)
    env = dict(os.environ)
    if _on_cpu():  # vLLM-CPU keeps a core for its front end: on 2 cores, half the machine
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    if lora_rank or loras:
        lora_rank = lora_bucket(lora_rank or 1)
        cpu = max(4 * cfg.max_loras, len(loras or ()))
        cmd += ["--enable-lora", "--max-lora-rank", str(lora_rank), "--max-loras",
                str(cfg.max_loras), "--max-cpu-loras", str(cpu)]  # fmt: skip
        if loras:
            cmd += ["--lora-modules", *(f"{n}={p}" for n, p in loras.items())]
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:  # a run's later server adds to the same log
        out.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait(proc, server.url, log, cfg.start_timeout)
        yield server
    finally:
        _stop(proc)


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _kv_cache_args(cfg: EngineConfig) -> list[str]:
    if any(a.startswith(("--kv-cache-memory", "--gpu-memory-utilization")) for a in cfg.args):
        return []  # the user's own setting
    gib = cfg.kv_cache_gib
    if gib is None:
        if not _on_cpu():
            return []
        gib = 2
    return ["--kv-cache-memory-bytes", str(int(gib * 2**30))]


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


def _post(url: str, body: dict, timeout: float = 600) -> Any:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw.decode()


def load_adapter(url: str, name: str, path: Path, log: Path | None = None) -> None:
    """Load the LoRA folder ``path`` into the server as ``name`` (runtime loading)."""
    try:
        _post(f"{url}/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
    except (OSError, ValueError) as e:
        where = f"; its log: {log}" if log else ""
        raise UserError(
            f"the vLLM server at {url} did not load the adapter {path} ({e}); "
            f"was it started with --enable-lora and runtime loading?{where}"
        ) from None


def unload_adapter(url: str, name: str) -> None:
    with suppress(OSError, ValueError):
        _post(f"{url}/v1/unload_lora_adapter", {"lora_name": name})


def served_generate(
    url: str,
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: int,
    ends: Sequence[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    models: Sequence[str] | None = None,
    cfg: EngineConfig | None = None,
    log: Path | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """The new token ids after each prompt (token ids), up to and including the first
    end-of-turn token, from the server at ``url`` (``generation.generate_ids``' contract).
    ``models``: per prompt, the served model or adapter name (default: the base)."""
    cfg = cfg or EngineConfig()

    def one(i: int) -> list[int]:
        body = {"model": models[i] if models else SERVED, "prompt": list(prompts[i]),
                "max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                "seed": seed * 1_000_003 + i, "stop_token_ids": list(ends),
                "return_token_ids": True, "skip_special_tokens": True}  # fmt: skip
        choice = _choice(url, _request(url, "/v1/completions", body, cfg, log), "token_ids")
        ids = [int(t) for t in choice["token_ids"]]
        stop = next((k for k, t in enumerate(ids) if t in ends), None)
        if stop is not None:
            ids = ids[: stop + 1]
        elif choice.get("finish_reason") == "stop":  # ended on a stop id it left out
            ids.append(int(ends[0]))
        if on_done:
            on_done(1)
        return ids

    with ThreadPoolExecutor(cfg.concurrency) as pool:
        return list(pool.map(one, range(len(prompts))))


def served_logprobs(
    url: str, prompt: list[int], *, model: str = SERVED, top: int = 20
) -> dict[int, float]:
    """``{token id: log-prob}`` of the ``top`` likeliest next tokens after ``prompt``."""
    body = {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0,
            "logprobs": top, "return_tokens_as_token_ids": True}  # fmt: skip
    choice = _choice(url, _request(url, "/v1/completions", body, EngineConfig(), None),
                     "logprobs")  # fmt: skip
    tops = choice["logprobs"]["top_logprobs"][0]
    return {int(k.removeprefix("token_id:")): float(v) for k, v in tops.items()}


def _choice(url: str, answer: Any, field: str) -> dict:
    """The first choice of a completion, which must carry ``field``; else one line."""
    try:
        choice = answer["choices"][0]
        if choice.get(field) is None:
            raise KeyError(field)
        return choice
    except (KeyError, IndexError, TypeError, AttributeError):
        raise UserError(f"the server at {url} answered without {field} ({str(answer)[:200]}); "
                        "is it a vLLM recent enough for return_token_ids?") from None  # fmt: skip


def _request(url: str, path: str, body: dict, cfg: EngineConfig, log: Path | None) -> Any:
    """POST ``body``; a failed request is retried ``cfg.retries`` times, then one line."""
    err: Exception | None = None
    for attempt in range(cfg.retries + 1):
        try:
            return _post(f"{url}{path}", body)
        except urllib.error.HTTPError as e:  # the server answered with an error
            err = RuntimeError(f"HTTP {e.code}: {e.read()[:300].decode(errors='replace')}")
        except (OSError, ValueError) as e:
            err = e
        if attempt < cfg.retries:
            time.sleep(0.5 * (attempt + 1))
    where = f"; its log: {log}" if log else ""
    raise UserError(f"the vLLM server at {url} failed a request {cfg.retries + 1} times "
                    f"({err}){where}")  # fmt: skip
