"""The wrong formulas issue 18 named, each applied alone to the file that holds it: each
must make the metric tests fail. Run from the repository root (``make mutants``); the
file is restored afterwards, also when interrupted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EVALS = Path("src/weightsteer/evals")
mutants = {
    "SI mass from +s only": (EVALS / "metrics.py", "mass = np.fmin(*means)", "mass = means[0]"),
    "tinymfv w from is_wrong alone": (
        EVALS / "suites" / "tinymfv.py",
        'w = (wide[("p_true", "wrong")] + 1 - wide[("p_true", "acceptable")]) / 2',
        'w = wide[("p_true", "wrong")]',
    ),
    "80% CIs": (EVALS / "bootstrap.py", "0.95, gt=0, lt=1,", "0.8, gt=0, lt=1,"),
    "no seed resampling": (
        EVALS / "bootstrap.py",
        "    if n < settings.min_seeds:\n        return np.ones((1 + draws, n))",
        "    if True:\n        return np.ones((1 + draws, n))",
    ),
}
survived = []
for name, (p, a, b) in mutants.items():
    orig = p.read_text()
    assert a in orig, f"{name}: the code changed; update this script"
    try:
        p.write_text(orig.replace(a, b))
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             "tests/test_metrics.py", "tests/test_verdict.py"],
            capture_output=True, text=True,
        )  # fmt: skip
        last = r.stdout.strip().splitlines()[-1]
        print(f"{name}: {'killed' if r.returncode else 'SURVIVED'} ({last})")
        if not r.returncode:
            survived.append(name)
    finally:
        p.write_text(orig)
sys.exit(1 if survived else 0)
