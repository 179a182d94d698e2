"""Sweeps on a real Slurm cluster through `hydra/launcher=slurm` (submitit): a sweep mixing
backends, jobs preempted or out of time that submitit requeues and that resume in their own job
directory, and one Lightning run as two Slurm tasks.

`.ci/slurm-up` starts a one-node cluster on this machine (partition `debug`,
MNISTLAB_SLURM_PARTITION for another). Without a cluster these tests are skipped, under CI
(`CI` set) they fail. Jobs run train.py on small generated data in the test's tmp_path (the
cluster is this machine), one CPU and one thread each.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnistlab.config import REPO_ROOT
from mnistlab.training import interrupts
from mnistlab.training.interrupts import RunInterrupted
from tests.conftest import metric_rows, results, train_env

# one node: under pytest-xdist (--dist loadgroup) these tests run one after another on one worker
pytestmark = pytest.mark.xdist_group("slurm")
PARTITION = os.environ.get("MNISTLAB_SLURM_PARTITION", "debug")
SLURM = ("hydra/launcher=slurm", f"hydra.launcher.partition={PARTITION}",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0",
         "hydra.launcher.mem_gb=2")
# 2,900 training images in batches of 20 (~1 s an epoch on one core), one thread as the job's CPU
RECIPE = ("data.val_size=100", "data.batch_size=20", "data.eval_batch_size=100",
          "trainer.threads=1", "trainer.progress_bar=false", "logger=none")


@pytest.fixture(scope="module")
def slurm() -> str:
    """The partition, once `sinfo` says it is up."""
    try:
        done = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%a"], capture_output=True,
                              text=True, timeout=30)
        answer = (done.stdout + done.stderr).strip()
        up = done.returncode == 0 and "up" in done.stdout.split()
    except (OSError, subprocess.TimeoutExpired) as e:
        answer, up = f"{type(e).__name__}: {e}", False
    if not up:
        reason = (f"no Slurm cluster answers with partition {PARTITION!r} (sinfo: "
                  f"{answer or 'no such partition'}); .ci/slurm-up starts one")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Slurm tests")
        pytest.skip(reason)
    return PARTITION


STARTED: list[subprocess.Popen] = []  # this test's train.py processes


def start(*args: str) -> subprocess.Popen:
    """train.py in its own process group (the sweep's driver, or a plain run)."""
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    STARTED.append(proc)
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for train.py; its exit code and the end of its output."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"train.py still ran after {timeout:.0f} s: {(stdout + stderr)[-3000:]}")
    return proc.returncode, (stdout + stderr)[-3000:]


def job_ids(folder: Path) -> list[str]:
    """The Slurm ids of the jobs submitit submitted for the sweeps under `folder` (`123` for a
    single job, `123_4` for a task of an array), from its .submitit/ folders."""
    return sorted(p.name.removesuffix("_submitted.pkl")
                  for p in folder.glob("**/.submitit/*/*_submitted.pkl"))


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[None]:
    """However a test ends, none of its Slurm jobs or train.py processes is left running."""
    yield
    ids = job_ids(tmp_path)
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def sweep_dir(out: Path) -> Path:
    sweeps = sorted((out / "multirun").iterdir())
    assert len(sweeps) == 1, sweeps  # a requeued start must not make a sweep dir of its own
    return sweeps[0]


def job_dirs(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.name.isdigit())


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"train.py ended before {what}: {finish(proc, 10)[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s")
        time.sleep(0.05)


def reference(data: Path, out: Path, *overrides: str) -> subprocess.Popen:
    """The same config as a plain `python train.py` run, never stopped (started alongside the
    Slurm job: it takes the node's other core)."""
    return start(*RECIPE, *overrides, f"paths.data={data}", f"hydra.run.dir={out}",
                 f"paths.output={out.parent}")


def scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def job_log(sweep: Path, job_id: str, task: int = 0) -> str:
    return (sweep / ".submitit" / job_id / f"{job_id}_{task}_log.out").read_text()


def starts(sweep: Path, job_id: str) -> int:
    """How often the job started (submitit logs each start)."""
    return job_log(sweep, job_id).count("Starting with JobEnvironment")


def wandb_groups(run: Path) -> set[str]:
    """The W&B group of each offline W&B run in a job directory."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    groups = set()
    for piece in (run / "wandb").glob("offline-run-*"):
        out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(piece)],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        groups |= {r["run"].get("run_group") for r in records if r["type"] == "run"}
    return groups


@pytest.mark.slurm
def test_slurm_sweep_mixing_backends_gives_four_jobs_a_report_and_one_wandb_group(
        slurm: str, tiny_data: Path, tmp_path: Path, cleanup: None) -> None:
    out = tmp_path / "out"
    proc = start("-m", *SLURM, "hydra.launcher.timeout_min=10", "optimizer=adam,rmsprop",
                 "backend=keras,lightning", "trainer=debug", "data.val_size=100",
                 "trainer.threads=1", "logger=wandb", f"paths.data={tiny_data}",
                 f"paths.output={out}")
    code, output = finish(proc, timeout=280)
    assert code == 0, output
    sweep = sweep_dir(out)
    jobs = job_dirs(sweep)
    assert jobs == ["0", "1", "2", "3"]
    with (sweep / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["status"] for r in rows} == {"completed"} and len(rows) == 4
    assert {(r["optimizer.name"], r["backend.name"]) for r in rows} == {
        ("adam", "keras"), ("adam", "lightning"), ("rmsprop", "keras"), ("rmsprop", "lightning")}
    for name in ("report.md", "curves.png", "ablation.png"):
        assert (sweep / name).is_file(), name
    ids = job_ids(out)  # four Slurm jobs, one array, each logged by submitit
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1, ids
    assert all("Job completed successfully" in job_log(sweep, i) for i in ids)
    groups = [wandb_groups(sweep / job) for job in jobs] + [wandb_groups(sweep)]  # + the report
    assert groups == [{f"multirun-{sweep.name}"}] * 5  # one W&B group for the sweep


@pytest.mark.slurm
@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_slurm_job_preempted_mid_training_is_requeued_and_resumes_in_its_job_directory(
        backend: str, slurm: str, data: Path, tmp_path: Path, cleanup: None) -> None:
    config = ("trainer.max_epochs=5", f"backend={backend}")
    ref = reference(data, tmp_path / "reference", *config)
    out = tmp_path / "out"
    proc = start("-m", *SLURM, "hydra.launcher.timeout_min=10", *RECIPE, *config,
                 f"paths.data={data}", f"paths.output={out}")
    wait_for(lambda: len(metric_rows(next(out.glob("multirun/*/0"), out))) >= 1, proc,
             "finished epoch in the job directory")
    [job_id] = job_ids(out)
    scontrol("requeue", job_id)  # what a preemption with PreemptMode=REQUEUE does
    code, output = finish(proc, timeout=280)
    assert code == 0, output
    sweep = sweep_dir(out)
    assert job_dirs(sweep) == ["0"]  # the requeued start wrote into its own job directory
    summary = json.loads((sweep / "0" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from_epoch"] >= 1, summary
    assert starts(sweep, job_id) == 2  # the same Slurm job, started again
    assert "interrupted by SIGTERM" in (sweep / ".submitit" / job_id /
                                        f"{job_id}_0_log.err").read_text()
    assert finish(ref, timeout=200)[0] == 0
    assert results(sweep / "0") == results(tmp_path / "reference")


@pytest.mark.slurm
def test_slurm_job_at_its_time_limit_is_requeued_and_resumes_in_its_job_directory(
        slurm: str, data: Path, tmp_path: Path, cleanup: None) -> None:
    """Slurm sends USR2 `signal_delay_s` before the time limit; the run stops at the next batch
    and submitit requeues it. So that the limit arrives mid-training on a machine of any speed,
    it is lowered once the first epoch is done (to 1-2 minutes from now: Slurm signals at its
    next check, within 30 s), and set back while the requeued job waits: each start of a job
    has its full time limit."""
    # ~1.7 s an epoch here: the 30 s until Slurm's next check land mid-training with epochs to spare
    config = ("trainer.max_epochs=30", "backend=lightning")
    ref = reference(data, tmp_path / "reference", *config)
    out = tmp_path / "out"
    proc = start("-m", *SLURM, "hydra.launcher.timeout_min=10", "hydra.launcher.signal_delay_s=90",
                 *RECIPE, *config, f"paths.data={data}", f"paths.output={out}")
    wait_for(lambda: len(metric_rows(next(out.glob("multirun/*/0"), out))) >= 1, proc,
             "finished epoch in the job directory")
    [job_id] = job_ids(out)
    elapsed = re.search(r"RunTime=(\d+):(\d+):(\d+)", scontrol("show", "job", job_id))
    hours, minutes, seconds = map(int, elapsed.groups())
    limit = math.ceil((hours * 3600 + minutes * 60 + seconds + 1) / 60) + 1
    scontrol("update", f"JobId={job_id}", f"TimeLimit={limit}")
    sweep = sweep_dir(out)
    wait_for(lambda: "Requeued job" in job_log(sweep, job_id), proc, "requeue", timeout=120)
    rows_at_stop = len(metric_rows(sweep / "0"))
    assert rows_at_stop < 30, "training finished before the time limit; make it longer"
    scontrol("update", f"JobId={job_id}", "TimeLimit=10")  # the next start's full limit
    code, output = finish(proc, timeout=400)
    assert code == 0, output
    log = job_log(sweep, job_id)
    assert "this job is timed-out" in log and starts(sweep, job_id) == 2, log[-3000:]
    assert job_dirs(sweep) == ["0"]  # the requeued start wrote into its own job directory
    summary = json.loads((sweep / "0" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from_epoch"] >= 1, summary
    assert summary["resumed_from_epoch"] == rows_at_stop
    assert finish(ref, timeout=300)[0] == 0
    assert results(sweep / "0") == results(tmp_path / "reference")


@pytest.mark.slurm
def test_slurm_two_tasks_train_one_lightning_run_as_two_ranks(slurm: str, tiny_data: Path,
                                                              tmp_path: Path,
                                                              cleanup: None) -> None:
    out = tmp_path / "out"
    proc = start("-m", *SLURM, "hydra.launcher.timeout_min=10", "hydra.launcher.tasks_per_node=2",
                 "trainer.devices=2", "trainer.accelerator=cpu", "backend=lightning",
                 "trainer=debug", "data.val_size=100", "data.batch_size=20", "trainer.threads=1",
                 "logger=wandb", f"paths.data={tiny_data}", f"paths.output={out}")
    code, output = finish(proc, timeout=280)
    assert code == 0, output
    sweep = sweep_dir(out)
    [job_id] = job_ids(out)
    for rank in (0, 1):  # two Slurm tasks, the ranks of one DDP run through Lightning's
        log = job_log(sweep, job_id, rank)  # SLURMEnvironment
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log, log[-3000:]
    assert job_dirs(sweep) == ["0"]  # one set of outputs
    run = sweep / "0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2, summary
    assert [r["epoch"] for r in metric_rows(run)] == ["1", "2"]  # each epoch once
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # one W&B run
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"best.ckpt", "last.ckpt"}


# submitit's requeue signal and mnistlab's stop at batch boundaries, in this process


@pytest.fixture
def submitit_job(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """This process as a submitit job, with a stand-in for submitit's USR2 handler (which
    pickles the job, runs `scontrol requeue` and exits); the calls it got."""
    calls: list[str] = []

    def requeue(signum: int, frame: object) -> None:
        calls.append("requeue")
        raise SystemExit(-1)

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    old = signal.signal(signal.SIGUSR2, requeue)
    yield calls
    assert signal.getsignal(signal.SIGUSR2) is requeue  # put back after the block
    signal.signal(signal.SIGUSR2, old)
    # the signals raised stay recorded after the block (the next block forgets them as it
    # starts): a later test's fit outside any block, in this worker, must not stop at them
    interrupts._received.clear()


def test_submitit_requeue_signal_waits_for_the_batch_boundary(submitit_job) -> None:
    with pytest.raises(RunInterrupted) as stop, interrupts.stop_at_batch_boundaries():
        signal.raise_signal(signal.SIGUSR2)
        submitit_job.append("the batch goes on")
        interrupts.check()
    assert submitit_job == ["the batch goes on", "requeue"]
    assert (stop.value.signum, stop.value.requeued) == (signal.SIGUSR2, True)
    assert "requeued" in str(stop.value)


def test_an_exit_after_a_stop_signal_is_the_interruption(submitit_job) -> None:
    with pytest.raises(RunInterrupted) as stop, interrupts.stop_at_batch_boundaries():
        signal.raise_signal(signal.SIGTERM)
        raise SystemExit  # as Lightning's SIGTERMException at an epoch boundary
    assert (stop.value.signum, stop.value.requeued) == (signal.SIGTERM, False)
    assert submitit_job == []  # SIGTERM alone: Slurm requeues (preemption) or ends the job
    with pytest.raises(SystemExit), interrupts.stop_at_batch_boundaries():
        raise SystemExit(3)  # no signal: not an interruption


def test_no_requeue_left_ends_the_job_with_submitits_reason(submitit_job) -> None:
    def declines(signum: int, frame: object) -> None:
        raise RuntimeError("Job not requeued because: timed-out too many times.")

    requeue = signal.signal(signal.SIGUSR2, declines)
    with pytest.raises(RuntimeError, match="too many times"), \
            interrupts.stop_at_batch_boundaries():
        signal.raise_signal(signal.SIGUSR2)
        interrupts.check()
    assert signal.getsignal(signal.SIGUSR2) is declines
    signal.signal(signal.SIGUSR2, requeue)


@pytest.mark.slurm
def test_slurm_pruned_optuna_search_reports_every_epoch_through_the_journal(
        slurm: str, tiny_data: Path, tmp_path: Path, cleanup: None) -> None:
    """Three trials, each a Slurm job that reports its epochs to the study in Optuna's journal
    file and is pruned by the median of the earlier ones when worse."""
    import optuna
    from optuna.trial import TrialState

    from mnistlab.training.pruning import open_storage

    sweep = tmp_path / "sweep"
    proc = start("-m", "sweeps=optuna", *SLURM, "hydra.launcher.timeout_min=10",
                 "hydra.sweeper.n_trials=3", "hydra.sweeper.storage=journal",
                 "hydra.sweeper.pruner.name=median", "hydra.sweeper.pruner.n_startup_trials=1",
                 "trainer=debug", "trainer.max_epochs=3", *RECIPE, f"paths.data={tiny_data}",
                 f"hydra.sweep.dir={sweep}", f"paths.output={tmp_path / 'out'}")
    code, output = finish(proc, timeout=400)
    assert code == 0, output
    study = optuna.load_study(study_name="mnistlab",
                              storage=open_storage(f"journal:{sweep / 'optuna.journal'}"))
    assert len(study.trials) == 3 and len(job_ids(sweep)) == 3
    for trial in study.trials:
        summary = json.loads((sweep / str(trial.number) / "summary.json").read_text())
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert summary["status"] == ("pruned" if trial.state == TrialState.PRUNED
                                     else "completed")
        # every epoch the job trained was reported from its Slurm job
        assert sorted(trial.intermediate_values) == list(
            range(1, summary["epochs_completed"] + 1))
