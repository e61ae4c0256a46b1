"""Interventions: the contract and registry (intervention.py), one file per method,
and iso-KL calibration (calibrate.py, calibration_prompts.py, compare_config.py)."""

from weightsteer.methods.intervention import (
    METHODS,
    NONE,
    Builder,
    Candidate,
    Intervention,
    MethodInputs,
    SetStrength,
    candidates,
    check_method,
    check_methods,
    register,
)

__all__ = [
    "METHODS",
    "NONE",
    "Builder",
    "Candidate",
    "Intervention",
    "MethodInputs",
    "SetStrength",
    "candidates",
    "check_method",
    "check_methods",
    "register",
]
