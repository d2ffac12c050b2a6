"""The fused AdamW the trainer builds makes the update torch's per-tensor AdamW makes."""

import torch
from torch import nn

from trainer.rl.optim import build_optimizer
from trainer.spec import OptimConfig


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.Linear(64, 8))


def _steps(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Three steps on fixed gradients; returns how far each parameter moved."""
    start = [p.detach().clone() for p in model.parameters()]
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        optimizer.step()
    return [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)]


def test_fused_adamw_moves_weights_as_the_per_tensor_loop_does():
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95))
    fused_model, loop_model = _model(), _model()
    fused = build_optimizer(fused_model, cfg)
    assert fused.defaults["fused"] is True
    groups = [
        {"params": [p for p in loop_model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in loop_model.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    loop = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95), foreach=False)
    for got, want in zip(_steps(fused_model, fused), _steps(loop_model, loop), strict=True):
        assert want.abs().min() > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
