"""The optimizer registry of the Keras side: the same names and numbers as lightning/optim.py.

Every hyperparameter is mapped explicitly; Keras' other arguments stay off (no clipping, EMA,
amsgrad, centered RMSprop). RMSprop's rule (eps inside the square root) is matched on the torch
side. One small difference remains in Adam and AdamW: Keras adds epsilon to sqrt(v) before the
bias correction ("epsilon hat"), torch after; torch's eps equals Keras' eps / sqrt(1 - beta2^t):
32x at the first step, the same after a few thousand steps, negligible beside sqrt(v).

Import this only after `env.import_keras` has chosen the backend.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from omegaconf import DictConfig

from mnistlab.backends.keras.schedule import LearningRate
from mnistlab.registry import Registry

# (optimizer config, the lr or schedule from keras/schedule.py) -> optimizer
OptimizerBuilder = Callable[[DictConfig, LearningRate], keras.optimizers.Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")


@OPTIMIZERS.register("adam")
def adam(opt: DictConfig, lr: LearningRate) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=lr, beta_1=opt.beta1, beta_2=opt.beta2,
                                 epsilon=opt.eps, amsgrad=False)


@OPTIMIZERS.register("adamw")
def adamw(opt: DictConfig, lr: LearningRate) -> keras.optimizers.Optimizer:
    """Decoupled decay: w -= lr * weight_decay * w before the Adam step, as torch's AdamW."""
    return keras.optimizers.AdamW(learning_rate=lr, weight_decay=opt.weight_decay,
                                  beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.eps,
                                  amsgrad=False)


@OPTIMIZERS.register("rmsprop")
def rmsprop(opt: DictConfig, lr: LearningRate) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(learning_rate=lr, rho=opt.rho, epsilon=opt.eps,
                                    momentum=opt.momentum, centered=False)


@OPTIMIZERS.register("sgd")
def sgd(opt: DictConfig, lr: LearningRate) -> keras.optimizers.Optimizer:
    # Keras' velocity is torch's momentum buffer times -lr: the same steps at a constant lr
    return keras.optimizers.SGD(learning_rate=lr, momentum=opt.momentum, nesterov=opt.nesterov)
