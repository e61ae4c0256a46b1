"""Export a weight vector to where models are served (one file per target format)."""

from weightsteer.export.lora import export_lora

__all__ = ["export_lora"]
