"""trainer.precision=bf16-mixed against the CPU it would train on: refused in one line where the
CPU has no bf16 instructions, before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnistlab.config import cpu
from mnistlab.errors import ConfigError

XEON = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
OLD_XEON = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize(("cpuinfo", "bf16"), [(XEON, True), (OLD_XEON, False),
                                                (GRAVITON, True)])
def test_bf16_instructions_are_read_from_cpuinfo(tmp_path: Path, cpuinfo: str,
                                                 bf16: bool) -> None:
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    flags = cpu.cpu_flags(tmp_path / "cpuinfo")
    assert bool(flags & cpu.BF16_FLAGS) is bf16
    assert cpu.cpu_flags(tmp_path / "absent") is None


def test_bf16_on_a_cpu_without_it_is_refused_in_one_line(compose_cfg) -> None:
    cfg = compose_cfg(["trainer.precision=bf16-mixed"])
    with pytest.raises(ConfigError) as info:
        cpu.check_precision(cfg, flags={"avx2", "avx512f"}, on_cpu=True)
    assert str(info.value).startswith("trainer.precision=bf16-mixed is not allowed on this CPU")
    assert "\n" not in str(info.value)
    cpu.check_precision(cfg, flags={"avx512_bf16"}, on_cpu=True)
    cpu.check_precision(cfg, flags={"avx2"}, on_cpu=False)  # a GPU run
    cpu.check_precision(cfg, flags=None, on_cpu=True)  # a CPU that cannot say: not refused
    cpu.check_precision(compose_cfg([]), flags={"avx2"}, on_cpu=True)  # 32-true


def test_auto_trains_on_cpu_unless_the_driver_lists_a_gpu(tmp_path: Path) -> None:
    gpus = tmp_path / "gpus"
    assert cpu.trains_on_cpu("auto", gpus) and cpu.trains_on_cpu("cpu", gpus)
    (gpus / "0000:01:00.0").mkdir(parents=True)
    assert not cpu.trains_on_cpu("auto", gpus) and not cpu.trains_on_cpu("gpu", gpus)
