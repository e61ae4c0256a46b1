"""The run configuration: one TOML file describes a whole experiment.

``RunConfig`` is assembled from the sections' own configs, each defined next to the code
that uses it; ``[eval]`` grows one sub-section per registered suite with settings. Every
field has a default and a one-line description (``weightsteer config-help`` prints them).
Unknown keys and bad values are refused with the key path in the message. Stages reuse
their artifacts by content keys (``run.py``); the config hash printed in the manifest
identifies the experiment as a whole.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from weightsteer.adapters import FAMILIES
from weightsteer.adapters.train_config import TrainConfig
from weightsteer.analysis import ANALYSES, AnalysisConfig
from weightsteer.core.config import Section, content_key, own_dump, with_entry_sections
from weightsteer.core.engine import EngineConfig
from weightsteer.core.errors import UserError
from weightsteer.core.models import ModelConfig
from weightsteer.evals import EvalSettings, eval_config_class
from weightsteer.evals.metrics import MetricsConfig
from weightsteer.methods import METHODS
from weightsteer.methods.compare_config import CompareConfig
from weightsteer.pairs.generate import DataConfig
from weightsteer.pairs.personas import BehaviorConfig
from weightsteer.pairs.questions import QuestionsConfig

# each section grows one sub-section per registered entry with settings of its own (a type
# checker sees the sections' own fields; an entry's are read with ``entry_settings``)
if TYPE_CHECKING:
    RunTrainConfig = TrainConfig
    EvalConfig = EvalSettings
    RunCompareConfig = CompareConfig
    RunAnalysisConfig = AnalysisConfig
else:
    RunTrainConfig = with_entry_sections(TrainConfig, FAMILIES, "TrainConfig")
    EvalConfig = eval_config_class()
    RunCompareConfig = with_entry_sections(CompareConfig, METHODS, "CompareConfig")
    RunAnalysisConfig = with_entry_sections(AnalysisConfig, ANALYSES, "AnalysisConfig")


class RunConfig(Section):
    name: str = Field("run", description="default run folder name under the runs dir")
    model: ModelConfig = ModelConfig()
    behavior: BehaviorConfig = BehaviorConfig()
    questions: QuestionsConfig = QuestionsConfig()
    data: DataConfig = DataConfig()
    engine: EngineConfig = EngineConfig()
    train: RunTrainConfig = RunTrainConfig()
    eval: EvalConfig = EvalConfig()
    metrics: MetricsConfig = MetricsConfig()
    compare: RunCompareConfig = RunCompareConfig()
    analysis: RunAnalysisConfig = RunAnalysisConfig()

    def digest(self) -> str:
        """A stable hash of the whole config: key order and formatting do not matter, nor
        do the settings of registered entries left at their defaults (a plugin installed
        beside a run changes nothing)."""
        data = self.model_dump(mode="json")
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                data[name] = own_dump(value)
        data.pop("engine")  # how text is generated, not what: the same run either way
        return content_key(data)

    def eval_key(self) -> dict[str, Any]:
        """What of ``[eval]`` shapes scored rows: its own settings and those of the suites
        it names (not the strengths: ``alphas``)."""
        used = {entry.partition(":")[0] for entry in self.eval.suites}
        data = own_dump(self.eval, used)
        data.pop("alphas", None)
        return data


def toml_key(part: str) -> str:
    """A key as TOML spells it: bare when it can be, quoted otherwise (``"act:pca"``)."""
    return part if part.replace("_", "").replace("-", "").isalnum() else json.dumps(part)


def _where(err: Any) -> str:
    parts = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    return ".".join(toml_key(p) for p in parts)


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
    """``(key path, default, description)`` of every field: the config reference. An
    entry's sub-section is keyed by the entry's name (quoted where TOML needs it)."""
    rows = []
    for name, field in model.model_fields.items():
        key = toml_key(field.alias or name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += describe(ann, f"{prefix}{key}.")
        else:
            default = field.get_default(call_default_factory=True)
            rows.append((f"{prefix}{key}", json.dumps(default), field.description or ""))
    return rows
