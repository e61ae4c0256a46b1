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

import contextlib
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from weightsteer.config import RunConfig, content_key, parse_config
from weightsteer.errors import UserError
from weightsteer.io import atomic_path, digest
from weightsteer.versions import library_versions

MANIFEST = "manifest.json"
STAGES = ("data", "train", "extract", "eval", "compare", "report")
SIDES = ("pos", "neg")


class Run:
    """A run folder and its manifest."""

    def __init__(self, root: Path, cfg: RunConfig, manifest: dict[str, Any]):
        self.root, self.cfg, self.manifest = root, cfg, manifest

    @classmethod
    def create(cls, root: str | Path, cfg: RunConfig) -> Run:
        """Open ``root`` for ``cfg``: a new folder, or an earlier run of it (resumed)."""
        root = Path(root)
        if (root / MANIFEST).is_file():
            run = cls.open(root)
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
        return run

    @classmethod
    def open(cls, root: str | Path) -> Run:
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise UserError(
                f"{root} is not a run folder (no {MANIFEST}); start one with "
                "`weightsteer run --config C`"
            )
        try:
            manifest = json.loads(path.read_text())
            cfg = parse_config(manifest["config"], str(path))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path} is damaged ({type(e).__name__}: {e})") from None
        return cls(root, cfg, manifest)

    def save(self) -> None:
        with atomic_path(self.root / MANIFEST, overwrite=True) as tmp:
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
        yield self.root / rel
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


@dataclass
class Context:
    """What the stages share in one process: the run, the model (loaded once), output."""

    run: Run
    console: Console
    progress: bool = True
    _loaded: tuple | None = None
    _fingerprint: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cfg(self) -> RunConfig:
        return self.run.cfg

    def model(self):
        if self._loaded is None:
            from weightsteer.modelling import fingerprint

            self._loaded = self.load(self.cfg.model.id)
            self._fingerprint = fingerprint(self._loaded[0], self.cfg.model.id).model_dump()
            self.run.manifest["model"] = self._fingerprint
        return self._loaded

    def load(self, source: str):
        """``(model, tokenizer)`` of a hub id, a folder or toyworld, with the run's dtype
        and device (``auto``: CUDA when there is one)."""
        from weightsteer.modelling import TOYWORLD, load_model, load_tokenizer

        name = source
        if source == TOYWORLD:
            from weightsteer.toy.build import build_info, ensure_toyworld

            source = str(ensure_toyworld(progress=self.progress))
            self.run.manifest["model_build"] = build_info(source)
        with self.console.status(f"loading {name}"):
            device = self.cfg.model.device
            if device == "auto":
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            return load_model(source, dtype=self.cfg.model.dtype, device=device), load_tokenizer(
                source
            )

    def fingerprint(self) -> dict:
        self.model()
        return self._fingerprint

    def units(self) -> list[tuple[str, int]]:
        return [(f, s) for f in self.cfg.train.families for s in self.cfg.train.seeds]


def _say(ctx: Context, rel: str, state: str) -> None:
    if state == "done":
        ctx.console.print(f"  reuse  {rel}", style="dim", highlight=False)
    elif state == "user":
        ctx.console.print(
            f"  keep   {rel} (not written by this run: used as given)",
            style="yellow",
            highlight=False,
        )


def _todo(ctx: Context, rel: str, key: str) -> bool:
    """Say what happens to unit ``rel`` (reuse it, keep the user's file, or make it) and
    record a user's file as such; True when the unit must be made."""
    state = ctx.run.state(rel, key)
    _say(ctx, rel, state)
    if state == "user":
        ctx.run.adopt(rel)
    return state == "todo"


def _bar(ctx: Context):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
        disable=not ctx.progress,
        transient=True,
    )


# -- stages ------------------------------------------------------------------------------


def stage_data(ctx: Context) -> None:
    from weightsteer.filters import SELF, build_filter
    from weightsteer.generate import generate_pair_data, pair_items
    from weightsteer.personas import load_pair
    from weightsteer.questions import split_questions

    cfg, run = ctx.cfg, ctx.run
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    split = split_questions(cfg.questions)
    items = pair_items(split.train, cfg.data.paraphrases, cfg.data.samples)
    key = content_key(
        {
            "model": ctx.fingerprint(),
            "pair": [pair.behavior, pair.pos, pair.neg],
            "items": [[it.id, it.user] for it in items],
            "data": cfg.data.model_dump(mode="json"),
        }
    )
    if not _todo(ctx, "data", key):
        return
    model, tok = ctx.model()
    keep = build_filter(
        cfg.data.filter,
        pair.behavior,
        lambda judge: (model, tok) if judge == SELF else ctx.load(judge),
    )
    work = run.root / ".work" / f"data-{key}"
    shown = False

    with _bar(ctx) as bar:
        task = bar.add_task("generating POS/NEG answers", total=len(items))

        def on_chunk(done: int, total: int, rows: list[dict]) -> None:
            nonlocal shown
            bar.update(task, advance=len(rows))
            if not shown:  # one decoded example at once: a template bug shows here
                shown = True
                row = rows[0]
                ctx.console.print(f"  example question: {row['item']['user']!r}", highlight=False)
                for side in SIDES:
                    persona = pair.prompt(side, row["item"]["paraphrase"])
                    ctx.console.print(
                        f"    {side} [{persona}] -> {row[side]['text']!r}", highlight=False
                    )

        result = generate_pair_data(
            model,
            tok,
            items,
            pair,
            work_dir=work,
            max_new_tokens=cfg.data.max_new_tokens,
            temperature=cfg.data.temperature,
            top_p=cfg.data.top_p,
            seed=cfg.data.seed,
            batch_size=cfg.data.batch_size,
            keep=keep,
            on_chunk=on_chunk,
        )
    if not result.counts["kept"]:
        raise UserError(
            f"every generated pair was dropped ({result.counts}); raise data.max_new_tokens "
            "or check the filter"
        )
    with run.unit("data", key) as out, atomic_path(out, overwrite=True, is_dir=True) as tmp:
        for side in SIDES:
            lines = "".join(json.dumps(r) + "\n" for r in result.records[side])
            (tmp / f"{side}.jsonl").write_text(lines)
    run.manifest["counts"]["data"] = result.counts
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        work.parent.rmdir()  # only when empty
    c = result.counts
    ctx.console.print(
        f"  data: {c['kept']} pairs kept of {c['pairs']} (dropped: {c['empty']} empty, "
        f"{c['unterminated']} unterminated, {c['filtered']} filtered)",
        highlight=False,
    )


def _step_callback(bar, task):
    """An HF Trainer callback moving a rich progress task one optimiser step at a time."""
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            bar.update(task, total=state.max_steps, completed=0)

        def on_step_end(self, args, state, control, **kw):
            bar.update(task, completed=state.global_step)

    return StepBar()


def _data_file(run: Run, side: str) -> Path:
    path = run.root / "data" / f"{side}.jsonl"
    if not path.is_file():
        raise UserError(f"{path} is missing; run the data stage first (weightsteer data --run)")
    return path


def stage_train(ctx: Context) -> None:
    from weightsteer.train import (
        INIT_STATE,
        file_digest,
        load_chat_jsonl,
        save_initial_state,
        train_adapter,
    )

    cfg, run = ctx.cfg, ctx.run
    data = {side: _data_file(run, side) for side in SIDES}
    records = {side: None for side in SIDES}
    tokens = 0
    with _bar(ctx) as bar:
        units = bar.add_task("training adapters", total=2 * len(ctx.units()))
        steps = bar.add_task("  steps", total=None)
        for fam, seed in ctx.units():
            spec = cfg.train.spec(fam, seed)
            init_rel = f"adapters/{fam}/seed{seed}/{INIT_STATE}"
            spec_json = spec.model_dump(mode="json")
            init_key = content_key({"spec": spec_json, "model": ctx.fingerprint()})
            if _todo(ctx, init_rel, init_key):
                with run.unit(init_rel, init_key) as out:
                    save_initial_state(ctx.model()[0], spec, out, overwrite=True)
            init = run.root / init_rel
            for side in SIDES:
                rel = f"adapters/{fam}/seed{seed}/{side}"
                key = content_key(
                    {
                        "spec": spec.model_dump(mode="json"),
                        "data": digest(data[side]),
                        "model": ctx.fingerprint(),
                        "init": digest(init),
                    }
                )
                if _todo(ctx, rel, key):
                    model, tok = ctx.model()
                    if records[side] is None:
                        records[side] = load_chat_jsonl(data[side])
                    bar.update(steps, description=f"  {fam} seed {seed} {side}")
                    info = {
                        "path": f"data/{side}.jsonl",
                        "sha256": file_digest(data[side]),
                        "rows": len(records[side]),
                    }
                    with run.unit(rel, key) as out:
                        train_adapter(
                            model,
                            tok,
                            records[side],
                            spec,
                            out,
                            data_info=info,
                            overwrite=True,
                            progress=False,
                            callbacks=[_step_callback(bar, steps)],
                            init_state=init,
                        )
                tokens += _trained_tokens(run.root / rel)
                bar.advance(units)
    run.manifest["counts"]["train"] = {"adapters": 2 * len(ctx.units()), "tokens": tokens}


def _trained_tokens(adapter_dir: Path) -> int:
    from weightsteer.train import read_adapter_info

    info = read_adapter_info(adapter_dir) or {}
    return int(info.get("train", {}).get("tokens", 0))


def _adapter_dir(run: Run, fam: str, seed: int, side: str) -> Path:
    path = run.root / "adapters" / fam / f"seed{seed}" / side
    if not path.is_dir():
        raise UserError(f"{path} is missing; run the train stage first (weightsteer train --run)")
    return path


def stage_extract(ctx: Context) -> None:
    from weightsteer.extract import extract_vector
    from weightsteer.personas import load_pair

    cfg, run = ctx.cfg, ctx.run
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    for fam, seed in ctx.units():
        dirs = {side: _adapter_dir(run, fam, seed, side) for side in SIDES}
        rel = f"vectors/{fam}-seed{seed}.safetensors"
        key = content_key({side: digest(d) for side, d in dirs.items()})
        if not _todo(ctx, rel, key):
            continue
        model, _ = ctx.model()
        with ctx.console.status(f"extracting {fam} seed {seed}"):
            vec = extract_vector(
                model,
                dirs["pos"],
                dirs["neg"],
                behavior=pair.behavior,
                personas={"pos": list(pair.pos), "neg": list(pair.neg)},
                model_id=cfg.model.id,
            )
        with run.unit(rel, key) as out:
            vec.save(out, overwrite=True)
    _extract_commons(ctx)


def _extract_commons(ctx: Context) -> None:
    """``vectors/common/<fam>-seed<k>.safetensors``: each vector's common mode, for
    ``weightsteer monitor`` (which finds it next to the vector)."""
    from weightsteer.extract import extract_common
    from weightsteer.monitor import common_path
    from weightsteer.vector import WeightVector

    run = ctx.run
    for fam, seed in ctx.units():
        dirs = {side: _adapter_dir(run, fam, seed, side) for side in SIDES}
        rel_vec = Path("vectors") / f"{fam}-seed{seed}.safetensors"
        vec_path = run.root / rel_vec
        rel = common_path(rel_vec).as_posix()
        key = content_key({"vector": digest(vec_path), **{s: digest(d) for s, d in dirs.items()}})
        if not _todo(ctx, rel, key):
            continue
        model, _ = ctx.model()
        common = extract_common(model, dirs["pos"], dirs["neg"], WeightVector.load(vec_path))
        with run.unit(rel, key) as out:
            common.save(out, overwrite=True)


def evaluate_intervention(
    model,
    tok,
    intervention,
    suites: Sequence,
    strengths: Sequence[float],
    *,
    calibrated_kl: float = float("nan"),
    batch_size: int = 64,
    bar=None,
    task=None,
) -> list:
    """Long-table frames of every suite at every strength of ``intervention``
    (``methods``), the strength switched in place; ``methods.NONE`` at ``[0]`` scores the
    unsteered model."""
    from weightsteer.evals import score_suite
    from weightsteer.results import result_rows

    frames = []
    with intervention.attach(model) as set_strength:
        for strength in strengths:
            set_strength(strength)
            system = intervention.system_prompt(strength)
            for suite in suites:
                s = score_suite(model, tok, suite, batch_size=batch_size, system=system)
                frames.append(
                    result_rows(
                        **intervention.describe(),
                        strength=strength,
                        suite=suite,
                        logratio=s.logratio,
                        pmass=s.pmass,
                        calibrated_kl=calibrated_kl,
                    )
                )
                if bar is not None:
                    bar.advance(task, len(suite.rows))
    return frames


def _rows_key(suites) -> str:
    return content_key([[s.name, [r.row_id for r in s.rows]] for s in suites])


def stage_eval(ctx: Context) -> None:
    from weightsteer.evals import build_suites
    from weightsteer.methods.weight import WeightSteering
    from weightsteer.results import write_results
    from weightsteer.vector import WeightVector

    cfg, run = ctx.cfg, ctx.run
    suites = build_suites(cfg)
    run.manifest["counts"]["eval"] = {s.name: s.meta for s in suites}
    rows_key = _rows_key(suites)
    per_vector = sum(len(s.rows) for s in suites) * len(cfg.eval.alphas)
    with _bar(ctx) as bar:
        task = bar.add_task("scoring", total=per_vector * len(ctx.units()))
        for fam, seed in ctx.units():
            vec_path = run.root / "vectors" / f"{fam}-seed{seed}.safetensors"
            if not vec_path.is_file():
                raise UserError(f"{vec_path} is missing; run the extract stage first")
            rel = f"results/{fam}-seed{seed}.parquet"
            key = content_key(
                {
                    "vector": digest(vec_path),
                    "eval": cfg.eval.model_dump(mode="json"),
                    "rows": rows_key,
                    "model": ctx.fingerprint(),
                }
            )
            if not _todo(ctx, rel, key):
                bar.advance(task, per_vector)
                continue
            model, tok = ctx.model()
            bar.update(task, description=f"scoring {fam} seed {seed}")
            frames = evaluate_intervention(
                model,
                tok,
                WeightSteering(vector=WeightVector.load(vec_path), family=fam, seed=seed),
                suites,
                cfg.eval.alphas,
                batch_size=cfg.eval.batch_size,
                bar=bar,
                task=task,
            )
            with run.unit(rel, key) as out:
                write_results(frames, out, cfg.model_dump(mode="json"))


def stage_compare(ctx: Context) -> None:
    """Every configured method at its calibrated +s and -s (``calibrate.py``), scored on
    the eval stage's rows; the unsteered model once as ``compare/none.parquet``."""
    from weightsteer.calibrate import calibrate_intervention
    from weightsteer.evals import build_suites
    from weightsteer.methods import NONE, MethodInputs, candidates
    from weightsteer.methods.activation import ActivationSteering, activation_layers
    from weightsteer.personas import load_pair, persona_chat
    from weightsteer.questions import calibration_prompts, split_questions
    from weightsteer.results import write_results
    from weightsteer.train import load_chat_jsonl

    cfg, run = ctx.cfg, ctx.run
    c = cfg.compare
    if not c.methods:
        ctx.console.print("  no methods to compare (compare.methods is empty)", highlight=False)
        return
    suites = build_suites(cfg)
    exclude = {q.text for q in split_questions(cfg.questions).train}
    exclude |= {r.messages[-1]["content"] for s in suites for r in s.rows}
    prompts = calibration_prompts(cfg, exclude)
    chats = [
        [persona_chat(None, t) for t in texts] for texts in (prompts.calibration, prompts.audit)
    ]
    run.manifest["counts"]["compare"] = prompts.counts
    data = {side: _data_file(run, side) for side in SIDES}
    vectors = {}
    if "weight" in c.methods:
        for fam, seed in ctx.units():
            path = run.root / "vectors" / f"{fam}-seed{seed}.safetensors"
            if not path.is_file():
                raise UserError(f"{path} is missing; run the extract stage first")
            vectors[fam, seed] = path
    model, tok = ctx.model()
    inputs = MethodInputs(
        model,
        tok,
        load_pair(cfg.behavior.name, cfg.behavior.file),
        {side: load_chat_jsonl(data[side]) for side in SIDES},
        vectors,
        activation_layers(model, c.activation.layers or cfg.train.layers),
        c,
        pairs_digest=digest(run.root / "data"),
        progress=ctx.progress,
    )
    common = {
        "rows": _rows_key(suites),
        "eval": cfg.eval.model_dump(mode="json", exclude={"alphas"}),
        "model": ctx.fingerprint(),
    }
    config = cfg.model_dump(mode="json")
    todo = [(cand, f"compare/{cand.slug}.parquet") for cand in candidates(c.methods, inputs)]
    with _bar(ctx) as bar:
        task = bar.add_task("comparing", total=len(todo) + 1)
        rel, key = "compare/none.parquet", content_key(common)
        if _todo(ctx, rel, key):
            bar.update(task, description="scoring the unsteered model")
            frames = evaluate_intervention(
                model, tok, NONE, suites, [0.0], batch_size=cfg.eval.batch_size
            )
            with run.unit(rel, key) as out:
                write_results(frames, out, config)
        bar.advance(task)
        for cand, rel in todo:
            key = content_key(
                {
                    **common,
                    # the method list and activation settings key only what they shape
                    "compare": c.model_dump(mode="json", exclude={"methods", "activation"}),
                    "prompts": content_key([prompts.calibration, prompts.audit]),
                    "candidate": [cand.method, cand.family, cand.seed, cand.sources],
                }
            )
            if not _todo(ctx, rel, key):
                bar.advance(task)
                continue
            name = cand.slug
            bar.update(task, description=f"calibrating {name}")
            intervention = cand.build()
            cals = calibrate_intervention(model, tok, intervention, *chats, c)
            bar.update(task, description=f"scoring {name}")
            frames = evaluate_intervention(
                model,
                tok,
                intervention,
                suites,
                [cals[-1].strength, cals[1].strength],
                calibrated_kl=c.target_kl,
                batch_size=cfg.eval.batch_size,
            )
            with run.unit(rel, key) as out:
                write_results(frames, out, config, calibration=[x.to_json() for x in cals.values()])
            if isinstance(intervention, ActivationSteering):
                intervention.save(run.root / "compare" / "activation" / f"{name}.safetensors")
            for cal in cals.values():
                ctx.console.print(f"  {name}: {cal.message()}", highlight=False)
            bar.advance(task)


def stage_report(ctx: Context) -> None:
    from weightsteer.report import write_report

    path = write_report(ctx.run.root)
    ctx.console.print(f"  report: {path}", highlight=False)


STAGE_FUNCS = {
    "data": stage_data,
    "train": stage_train,
    "extract": stage_extract,
    "eval": stage_eval,
    "compare": stage_compare,
    "report": stage_report,
}


def preflight(cfg: RunConfig) -> None:
    """Everything checkable before anything is written or loaded: behaviour, questions,
    suites, filter, compare methods and prompts. Bad input fails here with one line."""
    from weightsteer.evals import build_suites
    from weightsteer.filters import check_filter
    from weightsteer.modelling import check_source
    from weightsteer.personas import load_pair
    from weightsteer.questions import calibration_prompts, split_questions

    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    split_questions(cfg.questions)
    build_suites(cfg)
    check_source(cfg.model.id)
    check_filter(cfg.data.filter)
    if "prompt:engineered" in cfg.compare.methods:
        pair.engineered_prompts()
    if cfg.compare.methods:
        calibration_prompts(cfg, set())


def run_stages(ctx: Context, stages: Sequence[str] = STAGES) -> None:
    for name in stages:
        t0 = time.perf_counter()
        ctx.console.print(f"[bold]{name}[/]")
        STAGE_FUNCS[name](ctx)
        seconds = round(time.perf_counter() - t0, 1)
        ctx.run.manifest["stages"][name] = {
            "seconds": seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        ctx.run.save()
