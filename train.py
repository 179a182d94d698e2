"""Train the study's CNN: `python train.py [group=option ...] [key=value ...]`, `-m` for sweeps."""

from omegaconf import DictConfig

from mnistlab.run.app import run_app


def train(cfg: DictConfig) -> float:
    """Imports the training stack only now, so that --help and config errors answer at once."""
    from mnistlab.run.training import train as train_run

    return train_run(cfg)


if __name__ == "__main__":
    run_app(train, "config")
