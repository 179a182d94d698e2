"""Whether a run's precision suits the CPU it would train on, checked before any data is read.

bf16-mixed on a CPU without bf16 instructions runs, but through oneDNN's emulation, which is
slower than float32: refused, so that nobody pays for a precision that buys nothing. The CPU's
instruction sets come from /proc/cpuinfo (Linux); elsewhere nothing is refused.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mnistlab.errors import ConfigError

# x86: AVX512-BF16 (Cooper Lake, Zen 4 on) and AMX-BF16 (Sapphire Rapids on); Arm: FEAT_BF16
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
CPUINFO = Path("/proc/cpuinfo")
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str] | None:
    """The first CPU's instruction-set flags; None where /proc/cpuinfo cannot say."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            return set(value.split())
    return None


def trains_on_cpu(accelerator: str, gpus: Path = NVIDIA_GPUS) -> bool:
    """accelerator=auto picks a GPU when the NVIDIA driver lists one (both backends do so)."""
    if accelerator == "cpu":
        return True
    return accelerator == "auto" and not (gpus.is_dir() and any(gpus.iterdir()))


def check_precision(cfg: DictConfig, flags: set[str] | None = None,
                    on_cpu: bool | None = None) -> None:
    """bf16-mixed on a CPU without bf16 instructions: one line (flags/on_cpu: for tests)."""
    t = cfg.trainer
    if str(t.precision) != "bf16-mixed":
        return
    flags = cpu_flags() if flags is None else flags
    on_cpu = trains_on_cpu(t.accelerator) if on_cpu is None else on_cpu
    if on_cpu and flags is not None and not flags & BF16_FLAGS:
        raise ConfigError("trainer.precision=bf16-mixed is not allowed on this CPU: it has no "
                          "bf16 instructions (AVX512-BF16, AMX-BF16 or Arm BF16), so bf16 would "
                          "be emulated, slower than 32-true; use trainer.precision=32-true")
