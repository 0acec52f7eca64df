"""Which CPU computed a result, and the kernel level torch runs on it.

What it is: the CPU's vendor, family, model and name (``/proc/cpuinfo`` on
Linux, ``platform`` elsewhere), its widest x86 SIMD level, and the level
torch's ATen kernels actually use (``torch.backends.cpu.get_cpu_capability``),
recorded in every results file; plus ``force_kernels``, which pins torch to
AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``) before its first kernel runs.
What it is not: a benchmark. Float results differ between CPU kinds through
these kernels, so a number is reported beside the CPU that computed it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

KERNEL_ENV = "ATEN_CPU_CAPABILITY"


class CpuInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    vendor: str
    family: int | None
    model: int | None
    model_name: str
    simd: str  # the widest level the CPU offers: avx512, avx2, avx, sse4_2, ... or "unknown"
    torch_kernels: str  # the level torch's CPU kernels use here (after ATEN_CPU_CAPABILITY)
    kernel_env: str | None  # ATEN_CPU_CAPABILITY as set for this run


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first processor's ``key: value`` lines of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def simd_level(flags: set[str]) -> str:
    """The widest SIMD level among the CPU flags."""
    for level, needed in (("avx512", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}), ("avx2", {"avx2", "fma"}),
                          ("avx", {"avx"}), ("sse4_2", {"sse4_2"})):
        if needed <= flags:
            return level
    return "unknown"


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    try:
        fields = _cpuinfo_fields(cpuinfo.read_text(errors="replace"))
    except OSError:
        fields = {}

    def number(key: str) -> int | None:
        value = fields.get(key, "")
        return int(value) if value.isdigit() else None

    return CpuInfo(
        vendor=fields.get("vendor_id", platform.machine() or "unknown"), family=number("cpu family"),
        model=number("model"), model_name=fields.get("model name", platform.processor() or "unknown"),
        simd=simd_level(set(fields.get("flags", "").split())) if fields else "unknown",
        torch_kernels=torch.backends.cpu.get_cpu_capability(), kernel_env=os.environ.get(KERNEL_ENV),
    )


class KernelError(RuntimeError):
    """torch already runs other kernels than the ones asked for."""


def force_kernels(level: str) -> None:
    """Make torch use ``level`` ('avx2') kernels; 'native' leaves torch's choice alone.

    torch reads ATEN_CPU_CAPABILITY when its first CPU kernel runs, so this works
    only before that; afterwards the level asked for is checked and refused if it
    does not hold.
    """
    if level == "native":
        return
    os.environ[KERNEL_ENV] = level
    actual = torch.backends.cpu.get_cpu_capability()
    if actual.lower() != level:
        raise KernelError(f"cpu_kernels = '{level}' was asked for, but torch already runs {actual} kernels "
                          f"in this process: set {KERNEL_ENV}={level} in the environment instead")


#: glibc's mallopt parameters, and the size below which freed memory is kept for reuse.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
KEEP_BELOW = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc's malloc serve large tensors from its heap and keep freed memory for the next one.

    By default glibc maps every block over 32 MB afresh and unmaps it when freed, so each large
    activation (an evaluation pass over thousands of long series) pays page faults for memory it
    had a moment ago: on UCR Crop one evaluation epoch spent more time in the kernel than in
    computing. Raising the mmap and trim thresholds to 1 GiB keeps that memory in the process.
    Results are unchanged (allocation only); peak memory is what it was, but stays reserved.
    True where applied (Linux with glibc), False elsewhere.
    """
    if platform.system() != "Linux":
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # another C library (musl): leave it alone
            return False
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_BELOW)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BELOW))
    except (OSError, AttributeError):
        return False
