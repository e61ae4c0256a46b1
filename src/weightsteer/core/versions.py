"""Library versions recorded in every artifact, so a result says what made it."""

from importlib.metadata import PackageNotFoundError, version


def library_versions() -> dict[str, str]:
    out = {}
    for pkg in ("weightsteer", "torch", "transformers", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            out[pkg] = "unknown"
    return out
