"""Run folders: the pipeline's stages, content-keyed reuse, and the manifest.

``data -> train -> extract -> eval -> report``. Every unit of work (the pairs, one
adapter, one vector, one results table) is written atomically and recorded in
``manifest.json`` with a key: a hash of everything that shapes it (its config section,
the model fingerprint, and the digests of the artifacts it reads). A stage reuses a unit
whose key is unchanged, redoes it when the key changed, and keeps, without touching, an
artifact the user put in place of one (its digest is not the one the run wrote): stages
downstream then read the user's artifact, and their keys follow its digest. A unit that
was running when the process died is redone; as every unit is deterministic, a resumed
run ends with the same results as an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from weightsteer.core import dist
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path, digest, find_link
from weightsteer.core.versions import library_versions
from weightsteer.pipeline.config import RunConfig, parse_config
from weightsteer.pipeline.layout import MANIFEST, RunLayout

# what makes a run folder another experiment: its model and its behaviour (every unit
# would be redone, the old run's data replaced); any other change resumes the run and
# redoes the units it makes stale (an added alpha, or another model.target, redoes the
# eval and the comparison only)
EXPERIMENT_KEYS = (("model", "id"), ("behavior", "name"), ("behavior", "file"))


def check_same_experiment(root: Path, old: dict, cfg: RunConfig) -> None:
    """Refuse to resume the run folder ``root`` (made with config ``old``) with a config of
    another model or behaviour, naming what differs."""
    new = cfg.model_dump(mode="json")
    diff = [
        f"{a}.{b}: {old.get(a, {}).get(b)!r} -> {new.get(a, {}).get(b)!r}"
        for a, b in EXPERIMENT_KEYS
        if isinstance(old.get(a), dict) and b in old[a] and old[a][b] != new.get(a, {}).get(b)
    ]
    if diff:
        raise UserError(
            f"{root} is a run of another experiment ({'; '.join(diff)}); its data and "
            "adapters would be replaced: choose another --name (or --out), or delete the folder"
        )


class Run:
    """A run folder and its manifest."""

    def __init__(self, root: Path, cfg: RunConfig, manifest: dict[str, Any]):
        self.root, self.cfg, self.manifest = root, cfg, manifest
        self.layout = RunLayout(root)
        self.made = 0  # units written by this process (a stage that made none reused all)

    @classmethod
    def create(cls, root: str | Path, cfg: RunConfig) -> Run:
        """Open ``root`` for ``cfg``: a new folder, or an earlier run of it (resumed)."""
        root = Path(root)
        if not dist.is_main():  # rank 0 makes or resumes the folder; the others read it
            dist.barrier()
            run = cls.open(root)
            run.cfg = cfg
            return run
        link = find_link(root) if root.is_dir() else None
        if root.is_symlink() or link is not None:
            raise UserError(
                f"{link or root} is a symbolic link; a run folder holds none (a stage would "
                "write through it): give the folder it points to, or replace the link by a copy"
            )
        if RunLayout(root).manifest.is_file():
            run = cls.open(root)
            check_same_experiment(root, run.manifest.get("config") or {}, cfg)
            run.cfg = cfg
        else:
            if root.exists() and any(root.iterdir()):
                raise UserError(
                    f"{root} exists and is not a weightsteer run folder (no {MANIFEST}); "
                    "choose another --name or --runs-dir"
                )
            run = cls(root, cfg, {"weightsteer_run": 1, "units": {}, "stages": {}, "counts": {}})
        run.manifest.update(
            name=root.name,
            config=cfg.model_dump(mode="json"),
            config_hash=cfg.digest(),
            versions=library_versions(),
        )
        root.mkdir(parents=True, exist_ok=True)
        run.sweep()
        run.save()
        dist.barrier()
        return run

    @classmethod
    def open(cls, root: str | Path) -> Run:
        root = Path(root)
        path = RunLayout(root).manifest
        if not path.is_file():
            raise UserError(
                f"{root} is not a run folder (no {MANIFEST}); start one with "
                "`weightsteer run --config C`"
            )
        try:
            manifest = json.loads(path.read_text())
            cfg = parse_config(manifest["config"], str(path))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path} is damaged ({type(e).__name__}: {e})") from None
        return cls(root, cfg, manifest)

    def save(self) -> None:
        if not dist.is_main():
            return  # one writer of the manifest
        with atomic_path(self.layout.manifest, overwrite=True) as tmp:
            tmp.write_text(json.dumps(self.manifest, indent=2) + "\n")

    def sweep(self) -> None:
        """Remove temporaries an interrupted write left behind (``.name.*.tmp``/``.old``)."""
        for p in list(self.root.rglob(".*.tmp")) + list(self.root.rglob(".*.old")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    # -- units ---------------------------------------------------------------------------
    def state(self, rel: str, key: str) -> str:
        """``done`` (reuse), ``user`` (an artifact the run did not write: keep it), ``todo``."""
        path = self.root / rel
        if not path.exists():
            return "todo"
        entry = self.manifest["units"].get(rel)
        if entry is None:
            return "user"
        if entry["state"] == "running":
            return "todo"  # died while writing it, or just after
        if entry.get("digest") != digest(path):
            return "user"
        if entry["state"] == "user":
            return "user"
        return "done" if entry["key"] == key else "todo"

    @contextmanager
    def unit(self, rel: str, key: str) -> Iterator[Path]:
        """Record ``rel`` as running, yield its path; on success record its key and digest."""
        self.manifest["units"][rel] = {"key": key, "state": "running"}
        self.save()
        self.made += 1
        yield self.root / rel
        if not dist.is_main():
            return
        self.manifest["units"][rel] = {
            "key": key,
            "state": "done",
            "digest": digest(self.root / rel),
        }
        self.save()

    def adopt(self, rel: str) -> None:
        """Record a user's artifact as such, so later stages key on its digest."""
        self.manifest["units"][rel] = {
            "key": None,
            "state": "user",
            "digest": digest(self.root / rel),
        }
        self.save()


def build_run_suites(cfg: RunConfig) -> list:
    """The eval suites of ``cfg``, with what they may know of the run."""
    from weightsteer.evals import SuiteContext, build_suites

    return build_suites(cfg.eval, SuiteContext(cfg.eval.prefill, cfg.behavior.name, cfg.questions))


@dataclass
class Context:
    """What the stages share in one process: the run, the model and the suites (each made
    once), output."""

    run: Run
    console: Console
    progress: bool = True
    _loaded: tuple | None = None
    _fingerprint: dict | None = None
    _base_fp: Any = None  # the base's Fingerprint (with its weights sample)
    _target: tuple | None = None
    _target_fingerprint: dict | None = None
    eval_suites: list | None = None  # built once per process (preflight may pass them in)
    timings: dict[str, float] = field(default_factory=dict)
    # the target's suite scores at strength 0 (the unsteered model, the same for every
    # intervention): made by the first stage that needs them, shared by eval and compare
    unsteered: dict = field(default_factory=dict)
    engine: Any = None  # the run's vLLM server (``pipeline/engine.py``), once started

    def suites(self) -> list:
        """The run's eval suites (``eval.suites``), built once and shared by the stages."""
        if self.eval_suites is None:
            self.eval_suites = build_run_suites(self.cfg)
        return self.eval_suites

    @property
    def cfg(self) -> RunConfig:
        return self.run.cfg

    def model(self):
        if self._loaded is None:
            from weightsteer.core.models import fingerprint

            self._loaded = self.load(self.cfg.model.id)
            self._base_fp = fingerprint(self._loaded[0], self.cfg.model.id)
            # the sample itself stays out of unit keys and the manifest (the hash is there)
            self._fingerprint = self._base_fp.model_dump(exclude={"weights_sample"})
            self.run.manifest["model"] = self._fingerprint
        return self._loaded

    def load(self, source: str):
        """``(model, tokenizer)`` of a hub id, a folder or a registered model source, with
        the run's dtype and device (``auto``: CUDA when there is one)."""
        from weightsteer.core.models import load_model, load_tokenizer, resolve_device
        from weightsteer.core.sources import resolve_source, source_info

        with dist.main_first():  # a build (its own bar) happens once
            folder = resolve_source(source, progress=self.progress)
        build = source_info(source, folder)
        if build:
            self.run.manifest["model_build"] = build
        with self.console.status(f"loading {source}"):
            device = resolve_device(self.cfg.model.device)
            m = self.cfg.model
            tok = load_tokenizer(folder, system_prompt=m.system_prompt)
            model = load_model(folder, dtype=m.dtype, device=device, device_map=m.device_map)
            return model, tok

    def fingerprint(self) -> dict:
        self.model()
        assert self._fingerprint is not None  # set by model()
        return self._fingerprint

    def target(self):
        """``(model, tokenizer)`` that eval and compare steer and score: ``model.target``
        (a fine-tune of the base, whose shapes must match) or the base itself. Loading
        the target lets go of the base: one model in memory at a time."""
        source = self.cfg.model.target
        if not source:
            return self.model()
        if self._target is None:
            from weightsteer.core.models import (
                fingerprint,
                is_adapter_folder,
                is_half,
                merge_adapter,
                same_weights,
            )

            base = self.fingerprint()
            if is_adapter_folder(source):
                from weightsteer.adapters.extract import base_mismatch

                model, tok = self.model()
                if warning := base_mismatch(source, model, self.cfg.model.id):
                    self.console.print(f"[yellow]warning: {warning}[/]", highlight=False)
                model = merge_adapter(model, source)
            else:
                model, tok = self.load(source)
            self._loaded = None
            full = fingerprint(model, source)
            fp = full.model_dump(exclude={"weights_sample"})
            same = ("architecture", "shapes_hash")
            if any(fp[k] != base[k] for k in same):
                raise UserError(
                    f"model.target {source} ({fp['architecture']}) does not have the shapes "
                    f"of model.id {base['model_id']} ({base['architecture']}); the target "
                    "must be a fine-tune of the base the vector is built on"
                )
            fp["finetune_of"] = base["model_id"]
            assert self._base_fp is not None  # set by fingerprint()
            fp["same_weights"] = same_weights(full, self._base_fp, half=is_half(model))
            self._target, self._target_fingerprint = (model, tok), fp
            self.run.manifest["target"] = fp
        return self._target

    def target_fingerprint(self) -> dict:
        """The target's fingerprint (the base's when the run has no target)."""
        if not self.cfg.model.target:
            return self.fingerprint()
        self.target()
        assert self._target_fingerprint is not None  # set by target()
        return self._target_fingerprint

    def units(self) -> list[tuple[str, int]]:
        return [(f, s) for f in self.cfg.train.families for s in self.cfg.train.seeds]
