"""Where and how training runs: device, mixed precision, memory format, and the process group under torchrun.

One process or many, the training loop sees the same Runtime: under `torchrun --nproc_per_node=N` each
process trains a replica on its own shard of every batch and DistributedDataParallel averages the
gradients; without torchrun world_size is 1 and every collective here is a no-op.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..config import HardwareConfig
from ..engine.errors import UserError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None  # None = full precision
    channels_last: bool = False
    compile: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files: logs, samples, checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def place(self, net: nn.Module) -> nn.Module:
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def wrap(self, net: nn.Module) -> nn.Module:
        """The callable that trains `net`: DDP-wrapped across processes, compiled when asked. `net` keeps the
        weights."""
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(net, device_ids=ids)
        return torch.compile(net) if self.compile else net

    def adam(self, params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        # Fused Adam: one kernel for all parameters instead of several per tensor.
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=self.device.type == "cuda" or None)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(t)
        return t

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable, on the CPU), in rank order."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` (picklable, on the CPU) on every rank."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def setup(hw: HardwareConfig) -> Runtime:
    """The device from hardware.device (auto = cuda > mps > cpu); joins the process group when under
    torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(hw.device)
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    amp_dtype = None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution once
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if hw.amp:
            amp_dtype = torch.bfloat16 if native_bf16(device) else torch.float16
    return Runtime(device=device, rank=rank, world_size=world_size, amp_dtype=amp_dtype,
                   channels_last=hw.channels_last, compile=hw.compile and device.type == "cuda")


def native_bf16(device: torch.device) -> bool:
    """bf16 only where the tensor cores have it (compute capability 8.0+, Ampere on). A T4 (7.5) gets fp16
    with
    a grad scaler: `torch.cuda.is_bf16_supported()` also says yes where bf16 is emulated, which is slow."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def pick_device(name: str) -> torch.device:
    """hardware.device as a torch.device: auto = cuda > mps > cpu; a named device that is absent is a
    UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"setting hardware.device: unknown device '{name}'; use auto, cpu, cuda, cuda:N or "
                        "mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"setting hardware.device={name}, but no CUDA GPU is visible; use "
                        "hardware.device=auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"setting hardware.device={name}, but MPS is not available here; use "
                        "hardware.device=auto or cpu")
    return device
