"""The run configuration: one TOML file describes a whole experiment.

Every field has a default and a one-line description (``weightsteer run --help-config``
prints them). Unknown keys and bad values are refused with the key path in the message.
Stages reuse their artifacts by content keys (``runs.py``); the config hash printed in the
manifest identifies the experiment as a whole.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from weightsteer.adapters import AdapterSpec, get_family
from weightsteer.errors import UserError
from weightsteer.naming import DEFAULT_TARGETS


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _known_names(names: tuple[str, ...], kind: str, check) -> tuple[str, ...]:
    """``names`` without repeats, each accepted by ``check`` (a registry lookup)."""
    if len(set(names)) != len(names):
        raise ValueError(f"a {kind} is listed twice")
    for name in names:
        try:
            check(name)
        except UserError as e:
            raise ValueError(str(e)) from None
    return names


class ModelConfig(_Section):
    id: str = Field("toyworld", description="hub id, local model folder, or toyworld")
    dtype: str = Field("float32", description="float32, bfloat16, float16 or auto")
    device: str = Field(
        "auto", description="auto (cuda when available, else cpu), cpu, cuda:0, ..."
    )


class BehaviorConfig(_Section):
    name: str = Field("honesty", description="built-in persona pair (honesty, sycophancy)")
    file: str | None = Field(
        None, description="TOML/JSON file with behavior, pos = [...], neg = [...] (overrides name)"
    )


class QuestionsConfig(_Section):
    source: str = Field(
        "toyworld",
        description="toyworld, builtin:<name>, a .jsonl/.csv/.parquet file, or hf:<dataset id>",
    )
    column: str = Field("question", description="column holding the question text")
    label_column: str = Field(
        "label", description="column holding the POS answer (Yes/No) of held-out rows"
    )
    hf_split: str = Field("train", description="split of an hf: dataset")
    hf_config: str | None = Field(None, description="config name of an hf: dataset")
    n_train: int = Field(60, ge=1, description="questions used to generate training pairs")
    n_eval: int = Field(200, ge=0, description="held-out labelled questions for the IID eval")
    seed: int = Field(0, description="seed of the train/eval split")


class DataConfig(_Section):
    paraphrases: int = Field(
        5, ge=1, description="persona paraphrases each question is asked under"
    )
    samples: int = Field(1, ge=1, description="answers sampled per question and paraphrase")
    max_new_tokens: int = Field(64, ge=1, description="answer length limit (longer: dropped)")
    temperature: float = Field(0.0, ge=0, description="0: greedy; > 0: sampling")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    seed: int = Field(0, description="sampling seed")
    batch_size: int = Field(32, ge=1, description="prompts generated together")
    filter: str | None = Field(
        None,
        description="drop pairs that do not contrast: 'module:function' (pos, neg) -> keep, "
        "or 'judge:self' / 'judge:<model>' (a Yes/No judge, both answer orders)",
    )

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> DataConfig:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 needs temperature > 0 (greedy answers are identical)")
        return self


class TrainConfig(_Section):
    families: tuple[str, ...] = Field(("lora",), description="adapter families to train")
    seeds: tuple[int, ...] = Field((0,), description="one POS/NEG adapter pair per seed")
    rank: int = Field(32, ge=1, description="adapter rank (OFT: block size)")
    alpha: float = Field(64.0, gt=0, description="LoRA-type scaling numerator")
    lr: float | None = Field(None, gt=0, description="learning rate (default: the family's)")
    epochs: float = Field(1.0, gt=0, description="passes over the pairs")
    batch_size: int = Field(8, ge=1, description="training batch size")
    layers: tuple[float, float] = Field((0.3, 0.8), description="depth fractions [lo, hi)")
    targets: tuple[str, ...] = Field(DEFAULT_TARGETS, description="module kinds to adapt")
    max_length: int = Field(512, ge=8, description="truncate examples to this many tokens")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per-family AdapterSpec fields, e.g. [train.overrides.oft]",
    )

    @field_validator("families")
    @classmethod
    def _families(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one family")
        return _known_names(v, "family", get_family)

    @model_validator(mode="after")
    def _specs_build(self) -> TrainConfig:
        for fam in self.overrides:
            if fam not in self.families:
                raise ValueError(f"overrides for {fam!r}, which is not in families")
        for fam in self.families:
            self.spec(fam, self.seeds[0] if self.seeds else 0)
        return self

    def spec(self, family: str, seed: int) -> AdapterSpec:
        """The adapter recipe of one family and seed."""
        common = self.model_dump(exclude={"families", "seeds", "overrides"})
        fields = {**common, **self.overrides.get(family, {}), "family": family, "seed": seed}
        try:
            return AdapterSpec(**fields)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown adapter setting" if err["type"] == "extra_forbidden" else err["msg"]
            raise ValueError(f"overrides.{family}.{where}: {msg}") from None


class _SuiteSource(_Section):
    hf_config: str | None = Field(None, description="config name of an hf: dataset")
    hf_split: str = Field("train", description="split of an hf: dataset")


class ClaimsConfig(_SuiteSource):
    source: str | None = Field(
        None,
        description="none: the run's held-out questions; else a file or hf: id in the "
        "Anthropic persona-eval schema (question, answer_matching_behavior)",
    )
    column: str = Field("question", description="column holding the claim question")
    matching: Literal["pos", "neg"] = Field(
        "pos", description="which side the file's answer_matching_behavior is"
    )


class DilemmasConfig(_SuiteSource):
    source: str = Field(
        "hf:wassname/daily_dilemmas-self-honesty", description="hf: id or local file"
    )
    hf_config: str | None = Field("honesty_eval", description="config name of an hf: dataset")
    hf_split: str = Field("test", description="split of an hf: dataset")
    flagged_only: bool = Field(
        True, description="keep only actions whose own honesty flags are set"
    )
    prefill: str = Field("My choice:", description="assistant prefill before Yes/No")


class TinyMfvConfig(_SuiteSource):
    source: str = Field("hf:wassname/tiny-mfv", description="hf: id or local file")
    hf_config: str | None = Field("classic", description="config name of an hf: dataset")
    hf_split: str = Field("other_violate", description="split (condition) of an hf: dataset")
    target: str | None = Field(
        None, description="the foundation the behaviour should move (e.g. Authority)"
    )
    sign: Literal[-1, 1] = Field(-1, description="expected direction of logit(wrongness) at +α")
    min_pmass: float = Field(
        0.25, ge=0, le=1, description="vignettes with less true/false mass are dropped"
    )


class SycophancyConfig(_SuiteSource):
    source: str = Field(
        "builtin:sycophancy-sample",
        description="file or hf: id with question, correct, incorrect (README)",
    )
    pos: Literal["auto", "correct", "agree"] = Field(
        "auto",
        description="what the POS side does: stays correct, or agrees with the user's cue "
        "(auto: agree for a sycophancy behaviour, else correct)",
    )


class EvalConfig(_Section):
    suites: tuple[str, ...] = Field(
        ("claims",), description="eval suites (claims, dilemmas, tinymfv, sycophancy, toyworld)"
    )
    alphas: tuple[float, ...] = Field((-1.0, -0.5, 0.0, 0.5, 1.0), description="strength sweep")
    rows_per_suite: int = Field(200, ge=1, description="cap on rows of each suite")
    prefill: str = Field("", description="assistant prefill before the Yes/No token")
    batch_size: int = Field(64, ge=1, description="rows scored together")
    claims: ClaimsConfig = ClaimsConfig()
    dilemmas: DilemmasConfig = DilemmasConfig()
    tinymfv: TinyMfvConfig = TinyMfvConfig()
    sycophancy: SycophancyConfig = SycophancyConfig()

    @field_validator("alphas")
    @classmethod
    def _has_zero(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if 0.0 not in v:
            raise ValueError("include 0 (the unsteered reference every shift is measured from)")
        return tuple(sorted(set(v)))


class MetricsConfig(_Section):
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for CIs (0: none)")
    ci: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals")
    pmass_min: float = Field(
        0.5, ge=0, le=1, description="rows below this choice mass are counted as off-format"
    )
    min_rows: int = Field(
        10, ge=1, description="an SI denominator smaller than this is flagged as too small"
    )
    seed: int = Field(0, description="bootstrap seed")


class ActivationConfig(_Section):
    position: Literal["prompt", "response"] = Field(
        "response",
        description="hidden states fitted at the last prompt token, or averaged over the "
        "answer's tokens",
    )
    layers: tuple[float, float] | None = Field(
        None, description="depth fractions [lo, hi) of the hooked blocks (none: train.layers)"
    )
    batch_size: int = Field(16, ge=1, description="chats run together when fitting")


class CompareConfig(_Section):
    methods: tuple[str, ...] = Field(
        (
            "weight",
            "prompt:simple",
            "prompt:engineered",
            "act:mean_diff",
            "act:pca",
            "act:directional_ablation",
        ),
        description="interventions compared at the same KL ([]: skip the compare stage)",
    )
    target_kl: float = Field(1.0, gt=0, description="KL budget (nats) every method is set to")
    quantile: float = Field(
        0.95, gt=0, le=1, description="the per-token KL quantile that must equal target_kl"
    )
    tokens: int = Field(20, ge=1, description="greedy tokens generated per calibration prompt")
    tolerance: float = Field(0.1, gt=0, lt=1, description="relative tolerance on the calibrated KL")
    max_evals: int = Field(16, ge=2, description="KL measurements per strength search")
    prompts: str = Field(
        "auto",
        description="calibration prompts: auto (toyworld rows, else builtin:chat-prompts), "
        "a file or hf: id with a prompt column",
    )
    column: str = Field("prompt", description="column holding the calibration prompts")
    hf_split: str = Field("train", description="split of an hf: source")
    n_calibration: int = Field(24, ge=1, description="prompts the strength is searched on")
    n_audit: int = Field(24, ge=0, description="other prompts the achieved KL is checked on")
    batch_size: int = Field(16, ge=1, description="prompts generated together")
    activation: ActivationConfig = ActivationConfig()

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from weightsteer.methods import check_method

        return _known_names(v, "method", check_method)


class RunConfig(_Section):
    name: str = Field("run", description="default run folder name under the runs dir")
    model: ModelConfig = ModelConfig()
    behavior: BehaviorConfig = BehaviorConfig()
    questions: QuestionsConfig = QuestionsConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    metrics: MetricsConfig = MetricsConfig()
    compare: CompareConfig = CompareConfig()

    def digest(self) -> str:
        """A stable hash of the whole config (key order and formatting do not matter)."""
        return content_key(self.model_dump(mode="json"))


def content_key(obj: Any) -> str:
    """Stable short hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _where(err: dict) -> str:
    return ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))


def parse_config(data: dict[str, Any], origin: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (see `weightsteer config-help` for the known ones)"
        where = _where(err)
        raise UserError(f"{origin}: {where or 'config'}: {msg}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run config."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    data.setdefault("name", path.stem)
    return parse_config(data, str(path))


def describe(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key path, default, description)`` of every field: the config reference."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += describe(ann, f"{prefix}{name}.")
        else:
            default = field.get_default(call_default_factory=True)
            rows.append((f"{prefix}{name}", json.dumps(default), field.description or ""))
    return rows
