"""RunLayout: the one owner of a run folder's paths.

```
runs/<name>/
  manifest.json
  data/{pos,neg}.jsonl
  adapters/<family>/seed<k>/init.safetensors   the shared initial state of pos and neg
  adapters/<family>/seed<k>/{pos,neg}/
  vectors/<family>-seed<k>.safetensors
  vectors/common/<family>-seed<k>.safetensors  (monitor.common_path)
  results/<family>-seed<k>.parquet
  compare/none.parquet, compare/<slug>.parquet, compare/activation/<slug>.safetensors
  report.md, headline.md, figures/
```

Units are recorded in the manifest by their path relative to the root (``rel_*``); every
other module asks this class for a path instead of spelling one out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from weightsteer.adapters.train import INIT_STATE
from weightsteer.core.errors import UserError
from weightsteer.monitor import common_path
from weightsteer.report import HEADLINE, REPORT

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RunLayout:
    root: Path

    # -- relative names: the manifest's unit keys --------------------------------------
    @staticmethod
    def rel_data() -> str:
        return "data"

    @staticmethod
    def rel_adapter(family: str, seed: int, side: str) -> str:
        return f"adapters/{family}/seed{seed}/{side}"

    @staticmethod
    def rel_init(family: str, seed: int) -> str:
        return f"adapters/{family}/seed{seed}/{INIT_STATE}"

    @staticmethod
    def rel_vector(family: str, seed: int) -> str:
        return f"vectors/{family}-seed{seed}.safetensors"

    @classmethod
    def rel_common(cls, family: str, seed: int) -> str:
        return common_path(Path(cls.rel_vector(family, seed))).as_posix()

    @staticmethod
    def rel_results(family: str, seed: int) -> str:
        return f"results/{family}-seed{seed}.parquet"

    @staticmethod
    def rel_compare(slug: str) -> str:
        return f"compare/{slug}.parquet"

    @staticmethod
    def rel_analysis(family: str, seed: int, analysis: str) -> str:
        return f"analysis/{family}-seed{seed}/{analysis}.parquet"

    @staticmethod
    def rel_cosines() -> str:
        return "analysis/cosines.csv"

    # -- absolute paths ------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def data_dir(self) -> Path:
        return self.root / self.rel_data()

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def headline(self) -> Path:
        return self.root / HEADLINE

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def work(self, name: str) -> Path:
        """Scratch space of an unfinished unit (kept across an interruption)."""
        return self.root / ".work" / name

    def activation(self, slug: str) -> Path:
        return self.root / "compare" / "activation" / f"{slug}.safetensors"

    def data(self, side: str) -> Path:
        """``data/<side>.jsonl``, which must exist."""
        path = self.data_dir / f"{side}.jsonl"
        if not path.is_file():
            raise UserError(f"{path} is missing; run the data stage first (weightsteer data --run)")
        return path

    def adapter(self, family: str, seed: int, side: str) -> Path:
        """An adapter folder, which must exist."""
        path = self.root / self.rel_adapter(family, seed, side)
        if not path.is_dir():
            raise UserError(
                f"{path} is missing; run the train stage first (weightsteer train --run)"
            )
        return path

    def vector(self, family: str, seed: int) -> Path:
        """A vector file, which must exist."""
        path = self.root / self.rel_vector(family, seed)
        if not path.is_file():
            raise UserError(f"{path} is missing; run the extract stage first")
        return path

    def vectors(self) -> list[Path]:
        return sorted((self.root / "vectors").glob("*.safetensors"))

    def results(self) -> list[Path]:
        return sorted((self.root / "results").glob("*.parquet"))

    def compared(self) -> list[Path]:
        return sorted((self.root / "compare").glob("*.parquet"))

    def analyses(self) -> list[Path]:
        """``analysis/<family>-seed<k>/<analysis>.parquet``: one table per vector and
        analysis, each with the full vector's own rows."""
        return sorted((self.root / "analysis").glob("*/*.parquet"))
