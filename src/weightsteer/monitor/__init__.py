"""Monitor fine-tunes with a steering vector: does a fine-tune's weight change point along dW?

For a fine-tune X of the base, ``tau = theta_X - theta_base`` over the parameters the vector
``dW`` touches (a parameter X leaves unchanged counts as 0), per tensor in float32:

    cos(tau, dW) = <tau, dW> / (||tau|| ||dW||)     direction: +1 along POS, -1 along NEG
    coef         = <tau, dW> / ||dW||^2             tau's component along dW is coef * dW,
                                                    in the units of a steering alpha
    projection   = <tau, dW> / ||dW||               the length of that component

A fine-tune drifting toward NEG has a negative cosine before any bad output is seen
(Fierro & Roger 2025, the fourth result). Cosines of high-dimensional diffs are small even
when meaningful: read them against a control fine-tune (unrelated data) on the same base.

Sources: a PEFT adapter folder (its delta read exactly, plain LoRA as factors, never
densified), or a full model folder (tensors read one at a time from its safetensors
files, so peak memory is the base plus one tensor). ``MonitorCallback`` does the same for
the model in an HF ``Trainer`` at every logging step.
"""

from weightsteer.monitor.agreement import (
    Agreement,
    MonitorResult,
    agreements,
    common_path,
)
from weightsteer.monitor.checkpoints import finetune_taus, monitor_finetune
from weightsteer.monitor.outputs import TABLE_FORMATS, monitor_table, plot_monitor, write_table

__all__ = [
    "TABLE_FORMATS",
    "Agreement",
    "MonitorCallback",
    "MonitorResult",
    "agreements",
    "common_path",
    "finetune_taus",
    "monitor_finetune",
    "monitor_table",
    "plot_monitor",
    "write_table",
]


def __getattr__(name: str):
    if name == "MonitorCallback":  # imports transformers: only when asked for
        from weightsteer.monitor.callback import MonitorCallback

        return MonitorCallback
    raise AttributeError(f"module 'weightsteer.monitor' has no attribute {name!r}")
