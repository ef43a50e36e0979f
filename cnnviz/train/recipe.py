"""What a run is built from: the network (seeded, initialised, on its device), the optimiser and the LR schedule."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..data import DatasetInfo
from ..models import get_model
from .config import TrainConfig


def make_optimizer(cfg: TrainConfig, model: nn.Module, total_steps: int):
    """The optimiser and a per-step learning-rate schedule."""
    params = list(model.parameters())
    # torch's fused kernels: one per parameter instead of several small ops each. On 2 CPU cores
    # (benchmarks/bench_cpu_speed.py --optimizers) LeNet-5's Adam step took 230 us instead of 660 (for-loop), VGG-11 at
    # 1/4 width 1.1 ms instead of 2.6; SGD with momentum 1.2-1.7x faster; plain SGD (momentum 0) slower, so not there.
    fused = {"fused": True} if all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params) else {}
    if cfg.optimizer == "sgd":
        fused = fused if cfg.momentum > 0 else {}
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fused)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    elif cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def xavier_init(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every conv and linear layer (d2l's AlexNet recipe)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_model(cfg: TrainConfig, info: DatasetInfo, size: int, device: torch.device) -> nn.Module:
    """`cfg`'s network, seeded and initialised, on `device` (channels_last on CUDA)."""
    torch.manual_seed(cfg.seed)  # same seed, same device, same settings -> same run
    model = get_model(cfg.arch, info.channels, info.num_classes, size, **cfg.arch_kwargs)
    if cfg.init == "xavier":
        xavier_init(model)
    return model.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
