"""`+key=value` may only add what a schema declares: a misspelt key is one line naming the
nearest known key, before any file is written; Hydra's own keys and config groups stay free."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_dirs, train_here


@pytest.mark.parametrize(("override", "message"), [
    ("+trainer.max_epoch=5", "error: +trainer.max_epoch=5 adds the key trainer.max_epoch, which "
                             "no schema knows; did you mean trainer.max_epochs?"),
    ("++model.dropuot=0.1", "error: ++model.dropuot=0.1 adds the key model.dropuot, which no "
                            "schema knows; did you mean model.dropout?"),
    ("+foo=bar", "error: +foo=bar adds the key foo, which no schema knows; check its spelling "
                 "(--cfg job lists every key)"),
])
def test_an_added_key_no_schema_knows_is_refused(tiny_data: Path, tmp_path: Path, override: str,
                                                 message: str) -> None:
    done = train_here("trainer=debug", f"paths.data={tiny_data}", "data.val_size=100", override,
                      output=tmp_path / "out")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == message
    assert run_dirs(tmp_path / "out") == [] and not list((tmp_path / "out").rglob("*.yaml"))


def test_added_known_and_hydra_keys_still_run(tiny_data: Path, tmp_path: Path) -> None:
    done = train_here("trainer=debug", f"paths.data={tiny_data}", "data.val_size=100",
                      "++trainer.max_epochs=1", "+hydra.job.env_set.MNISTLAB_TEST=1",
                      "logger=none", output=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = run_dirs(tmp_path / "out")
    assert (run / "metrics.csv").read_text().count("\n") == 2  # the header and epoch 1
