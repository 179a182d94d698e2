"""The optimizer registry of the torch side, and RMSprop with Keras' update rule.

Every hyperparameter comes from the config, so both backends use the same numbers; the Keras
builders of the same names are in keras/optim.py.

torch.optim.RMSprop divides by sqrt(v) + eps, Keras by sqrt(v + eps); where gradients are near
sqrt(eps) (3e-4 for eps 1e-7) torch takes larger steps. The study's runs used Keras' rule and both
backends must train the same recipe, so this small optimizer is ours rather than torch's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from omegaconf import DictConfig

from mnistlab.registry import Registry

OptimizerBuilder = Callable[[Iterable, DictConfig], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")


@OPTIMIZERS.register("adam")
def adam(params: Iterable, opt: DictConfig) -> torch.optim.Optimizer:
    """torch's fused Adam: one kernel per parameter for the whole update (the same rule), where
    the default runs a dozen ops per parameter on a CPU, ~0.4 ms of a batch-50 step."""
    return torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps,
                            fused=True)


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable, opt: DictConfig) -> torch.optim.Optimizer:
    """Decoupled decay: w -= lr * weight_decay * w before the Adam step, as Keras' AdamW;
    fused as Adam."""
    return torch.optim.AdamW(params, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps,
                             weight_decay=opt.weight_decay, fused=True)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params: Iterable, opt: DictConfig) -> torch.optim.Optimizer:
    return KerasRMSprop(params, lr=opt.lr, rho=opt.rho, eps=opt.eps, momentum=opt.momentum)


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable, opt: DictConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)


class KerasRMSprop(torch.optim.Optimizer):
    """v = rho*v + (1-rho)*g^2; step = lr*g / sqrt(v + eps); with momentum m = momentum*m + step."""

    def __init__(self, params: Iterable, lr: float, rho: float = 0.9, eps: float = 1e-7,
                 momentum: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, eps, momentum = group["lr"], group["rho"], group["eps"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["v"] = torch.zeros_like(p)
                    state["m"] = torch.zeros_like(p)
                v, g = state["v"], p.grad
                v.mul_(rho).addcmul_(g, g, value=1 - rho)
                step = g.mul(lr).div_(v.add(eps).sqrt_())
                if momentum > 0:
                    step = state["m"].mul_(momentum).add_(step)
                p.sub_(step)
        return loss
