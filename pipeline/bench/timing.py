"""Timing helpers shared by the benchmarks: warm up, synchronise, take the median, measure the device's
peak, count FLOPs."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int = 2, reps: int = 5) -> float:
    """Median wall time of `fn` over `reps` timed calls after `warmup` untimed ones (device work included)."""
    return statistics.median(_seconds(fn, device, warmup, reps))


def _seconds(fn: Callable[[], object], device: torch.device, warmup: int, reps: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def peak_flops(device: torch.device) -> tuple[float, str]:
    """The device's measured matrix-multiply rate (FLOP/s): bf16 on a GPU, fp32 on the CPU, from the fastest
    of 20 calls (a peak; the median would count other processes' use of the cores)."""
    if device.type == "cuda":
        n, dtype = 8192, torch.bfloat16
    else:
        n, dtype = 1024, torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = min(_seconds(lambda: a @ b, device, warmup=3, reps=20))
    return 2 * n**3 / seconds, f"{n}x{n}x{n} {str(dtype).removeprefix('torch.')} matmul"


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of `fn`, counted by PyTorch's FlopCounterMode (forward and backward
    matmuls/convs)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
