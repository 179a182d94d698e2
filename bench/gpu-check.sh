#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU and mnistlab's venv active:
#   bash bench/gpu-check.sh [MORE OVERRIDES...]        e.g. data.batch_size=256
# For the default recipe and experiment=fast, on each backend and at each precision (32-true,
# bf16-mixed, 16-mixed: torch autocast, Keras' mixed policies), one epoch with
# trainer.accelerator=gpu:
# 1. a plain `train.py` run: prints its summary.json train_samples_per_second and test_acc;
# 2. the same run in-process on the first 5,000 training samples, with the framework's CUPTI
#    profiler (torch.profiler for lightning, tf.profiler for keras) on from the first training
#    batch to the end of the epoch's validation pass (mnistlab's EpochRecorder.mark_first_batch
#    and log_epoch). The host-to-device copies it records must carry less than a tenth of the
#    bytes of that epoch's images (training and validation, as uint8): batches that crossed would
#    carry all of them (as float32, four times as many). A profiler that records no copy at all
#    (not even the device-to-host read of the epoch's metrics) fails the check: it cannot tell.
# Exit status 0 when every run trained and passed, 1 otherwise (each failure is one line).
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu-check: nvidia-smi not found: this check needs a machine with an NVIDIA GPU" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

CHECK=$(cat <<'PY'
import json
import runpy
import subprocess
import sys
from pathlib import Path

from mnistlab.training.recorder import EpochRecorder
from mnistlab.run.training import TrainingRun

recipe, backend, precision, folder = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
overrides = sys.argv[5:]
label = f"{recipe:8} {backend:9} {precision:10}"
common = ["logger=none", "trainer.progress_bar=false", f"paths.output={folder}"]


def report(line: str, ok: bool) -> None:
    """One line per run, here and in the summary that the script prints at the end."""
    with (folder.parent / "results.txt").open("a") as f:
        f.write(f"{label} {line}\n")
    print(f"{label} {line}", flush=True)
    sys.exit(0 if ok else 1)


done = subprocess.run([sys.executable, "train.py", *overrides, *common,
                       f"hydra.run.dir={folder}/run"], capture_output=True, text=True)
if done.returncode:
    report(f"train.py failed: {(done.stderr.strip() or 'no output').splitlines()[-1]}", False)
summary = json.loads((folder / "run" / "summary.json").read_text())


def torch_tracer(trace: Path):
    from torch.profiler import ProfilerActivity, profile

    profiler = profile(activities=[ProfilerActivity.CUDA])
    profiler.start()

    def stop() -> list[tuple[bool, int]]:
        profiler.stop()
        profiler.export_chrome_trace(f"{trace}.json")
        events = json.loads(Path(f"{trace}.json").read_text())["traceEvents"]
        return [("HtoD" in e["name"], int(e["args"]["bytes"])) for e in events
                if e.get("cat") == "gpu_memcpy"]

    return stop


def tf_tracer(trace: Path):
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    tf.profiler.experimental.start(str(trace))

    def stop() -> list[tuple[bool, int]]:
        tf.profiler.experimental.stop()
        copies = []
        for path in trace.rglob("*.xplane.pb"):
            for plane in xplane_pb2.XSpace.FromString(path.read_bytes()).planes:
                if not plane.name.startswith("/device:GPU:"):  # CUPTI's activity records
                    continue
                names = {i: m.name for i, m in plane.stat_metadata.items()}
                for event in (e for line in plane.lines for e in line.events):
                    for stat in event.stats:  # "kind_src:pageable kind_dst:device size:N ..."
                        if names.get(stat.metadata_id) == "memcpy_details":
                            d = dict(kv.split(":", 1) for kv in names[stat.ref_value].split())
                            copies.append((d["kind_src"] in ("pageable", "pinned")
                                           and d["kind_dst"] == "device", int(d["size"])))
        return copies

    return stop


window: dict = {}
execute, mark, log_epoch = (TrainingRun.execute, EpochRecorder.mark_first_batch,
                            EpochRecorder.log_epoch)


def execute_spy(self, job, data):
    window["image_bytes"] = data.x_train.nbytes + data.x_val.nbytes
    return execute(self, job, data)


def mark_spy(self):
    if "stop" not in window:
        tracer = torch_tracer if backend == "lightning" else tf_tracer
        window["stop"] = tracer(folder / "trace")
    mark(self)


def log_epoch_spy(self, **values):
    if "copies" not in window:
        window["copies"] = window["stop"]()
    log_epoch(self, **values)


TrainingRun.execute, EpochRecorder.mark_first_batch, EpochRecorder.log_epoch = (
    execute_spy, mark_spy, log_epoch_spy)
sys.argv = ["train.py", *overrides, *common, "data.train_subset=5000",
            f"hydra.run.dir={folder}/profiled"]
try:
    runpy.run_path("train.py", run_name="__main__")
except SystemExit as e:  # mnistlab has printed the error line
    if e.code:
        report(f"the profiled train.py failed (exit {e.code}; its error is above)", False)

copies = window.get("copies", [])
h2d = [size for to_device, size in copies if to_device]
limit = window["image_bytes"] / 10
verdict = ("cannot tell: the profiler recorded no copies" if not copies
           else "ok" if sum(h2d) < limit else "FAILED: batches cross from host to device")
report(f"{summary['train_samples_per_second']:>10,.0f} samples/s  test acc "
       f"{summary['test_acc']:.4f}  host->device in the epoch: {len(h2d)} copies, "
       f"{sum(h2d) / 1e6:.2f} MB (limit {limit / 1e6:.2f} MB): {verdict}", verdict == "ok")
PY
)

failed=0
for recipe in default fast; do
    for backend in lightning keras; do
        for precision in 32-true bf16-mixed 16-mixed; do
            args=(backend="$backend" trainer.max_epochs=1 trainer.accelerator=gpu
                  trainer.precision="$precision" "$@")
            if [[ $recipe == fast ]]; then
                args=(experiment=fast "${args[@]}")
            fi
            python -c "$CHECK" "$recipe" "$backend" "$precision" \
                "$work/$recipe-$backend-$precision" "${args[@]}" || failed=1
        done
    done
done
echo
echo "gpu-check summary (recipe, backend, precision, one epoch on the GPU):"
cat "$work/results.txt"
exit "$failed"
