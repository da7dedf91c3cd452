"""Timing helpers shared by the benchmarks: warm up, synchronise, take the median, measure the device's
peak, count FLOPs."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F


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
    """The device's measured peak (FLOP/s), from the fastest of 20 calls (the median would count other
    processes' use of the cores): a bf16 matrix multiply on a GPU; on a CPU a 3x3 convolution through oneDNN,
    which there runs 4-6x faster than the matrix multiply (MKL's, slow on AMD CPUs)."""
    if device.type == "cuda":
        a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
        seconds = min(_seconds(lambda: a @ b, device, warmup=3, reps=20))
        return 2 * 8192**3 / seconds, "8192x8192x8192 bfloat16 matmul"
    n, channels, size = 4, 256, 64
    x = torch.randn(n, channels, size, size).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = min(_seconds(lambda: F.conv2d(x, w, padding=1), device, warmup=3, reps=20))
    return (2 * n * channels**2 * 9 * size**2 / seconds,
            f"3x3 conv {channels}->{channels} channels at {size}x{size}, batch {n}, float32 channels_last")


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of `fn`, counted by PyTorch's FlopCounterMode (forward and backward
    matmuls/convs)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
