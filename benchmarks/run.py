"""sscbench's benchmark: the stacked trainer against plain per-model loops, on the same work.

Run with ``make bench`` (``make bench-tiny`` for the size CI runs). Prints a
table of wall time (median over repeats), samples per second, MFU and peak
memory with ratios, and writes ``results/bench.json`` with the machine's
description. Implementations run round-robin, each repeat in a fresh worker
process (so peak memory is its own) that first runs the same work on two
batches untimed, so one-time start-up costs are left out; all in one
invocation. At the tiny size (``--tiny``, the suite's check that the benchmark
runs; its numbers are not reported) one process measures every row in turn.
``sscbench reproduce`` and the plain protocol script are timed whole, start-up
included.

MFU = model training FLOP/s / dense float32 matmul FLOP/s of this machine,
measured in the same run with the same thread count: both through
``torch.matmul`` (torch's BLAS) and through oneDNN (``torch.ops.mkldnn``, where
this torch has it), since on some CPUs one library is much faster than the
other; MFU is reported against each. Model FLOPs per sample are counted by
``torch.utils.flop_counter`` on one plain training step (one forward, one
saliency backward with create_graph, one backward), so every implementation
is charged the same useful work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

HP = {"lr": 5e-3, "weight_decay": 1e-3, "lambda_ssc": 1e-3}
# (regularizer, models, epochs): a tuning round of 10 trials and an evaluation arm of 5 seeds, per plugin.
SIZES = {
    "default": {"work": [("baseline", 10, 1), ("ssc", 10, 1), ("baseline", 5, 1), ("ssc", 5, 1)],
                "samples": 7000, "repeats": 3},
    "tiny": {"work": [("baseline", 2, 1), ("ssc", 2, 1)], "samples": 512, "repeats": 1},
}
TINY_PROTOCOL = (2, 1, 2, 1)


def protocol_size(size: str) -> tuple[int, int, int, int]:
    """Trials, tuning epochs, seeds and evaluation epochs: the spec's defaults (PROTOCOL.md) or the tiny ones."""
    from sscbench.spec import RunSpec

    if size == "tiny":
        return TINY_PROTOCOL
    spec = RunSpec()
    return spec.tune.trials, spec.tune.epochs, spec.evaluate.seeds, spec.evaluate.epochs


def implementations(workers: int) -> list[str]:
    """The rows: sscbench by default and with ``workers`` sub-stacks at once, then the two reference loops."""
    return ["sscbench", f"sscbench --workers {workers}", "plain", "jacrev"]


#: Rows of the workloads table, timed in the same round-robin: the mnist1d-cnn workload stacked and
#: as a plain per-model loop, and the MLP through the generic stack (vmap over functional_call)
#: instead of the specialised MLP stack the first table times.
WORKLOAD_ROWS = ["sscbench cnn", "plain cnn", "sscbench mlp, generic stack"]


def architecture(impl: str):
    """The architecture a workload row trains (None: the MLP rows of the first table)."""
    from torch import nn

    from sscbench.contracts import task
    from sscbench.engine.stack import Architecture, mlp_module
    from sscbench.spec import RunSpec, WorkloadSpec

    if "cnn" in impl:
        return task.resolve(RunSpec(workload=WorkloadSpec(name="mnist1d-cnn"))).architecture()
    if "generic" in impl:  # a Flatten in front (no parameters, same draws) hides the MLP from the fast path
        return Architecture(lambda: nn.Sequential(nn.Flatten(), *mlp_module([40, 256, 256, 10])), (40,))
    return None


def sscbench_workers(impl: str) -> int:
    return int(impl.rsplit(" ", 1)[1]) if impl.startswith("sscbench --workers ") else 1


def cpu_fields() -> dict[str, str]:
    """The first processor's identification from /proc/cpuinfo (empty where there is none).

    Family and model matter: the same "AMD EPYC" name covers Zen 4 (family 25),
    whose AVX-512 runs on 256-bit units, and Zen 5 (family 26), where it is twice
    as wide, and the matmul rates differ accordingly.
    """
    wanted = {"model name": "cpu", "vendor_id": "vendor", "cpu family": "family", "model": "model"}
    found: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # end of the first processor's block
            key, _, value = line.partition(":")
            if key.strip() in wanted:
                found[wanted[key.strip()]] = value.strip()
    except OSError:
        pass
    found.setdefault("cpu", platform.processor() or "unknown")
    return found


def cpu_label() -> str:
    """One line for tables: name, family/model where known, and the SIMD level torch's kernels use."""
    fields = cpu_fields()
    ident = f" (family {fields['family']} model {fields['model']})" if "family" in fields and "model" in fields else ""
    return f"{fields['cpu']}{ident}, torch kernels {torch.backends.cpu.get_cpu_capability()}"


def load_train(samples: int):
    from sscbench import data
    from sscbench.spec import DataSpec

    ds = data.load(DataSpec())
    return ds.train.x[:samples].contiguous(), ds.train.y[:samples].contiguous()


WARMUP_SAMPLES = 256  # two batches: every code path and shape of the work runs once before the timing


def run_work(impl: str, size: str, device: str, samples: int | None = None) -> float:
    """Train the size's work (on ``samples`` training samples if given) with one implementation; wall seconds."""
    import reference

    from sscbench.contracts import registry
    from sscbench.data import Split
    from sscbench.engine.trainer import Member, train_stack
    from sscbench.spec import TrainSpec

    cfg = SIZES[size]
    x, y = load_train(samples or cfg["samples"])
    x, y = x.to(device), y.to(device)
    widths = [40, 256, 256, 10]
    arch = architecture(impl)
    model = arch or widths
    make = (lambda seed: arch.module(seed)) if arch is not None else None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for regularizer, models, epochs in cfg["work"]:
        lam = HP["lambda_ssc"] if regularizer == "ssc" else 0.0
        if impl.startswith("sscbench"):
            params = {"lambda_ssc": lam} if regularizer == "ssc" else {}
            members = [Member(s, HP["lr"], HP["weight_decay"], params) for s in range(models)]
            train_stack(Split(x, y), model, members, registry.load(regularizer), epochs,
                        TrainSpec(device=device, workers=sscbench_workers(impl)))
        else:
            for s in range(models):
                reference.train_one(x, y, widths, s, HP["lr"], HP["weight_decay"], lam, epochs, 128,
                                    impl.split()[0], make_model=make)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def flops_per_sample(regularizer: str, device: str) -> float:
    """Model FLOPs of one training step per sample, counted on the plain reference step."""
    import reference
    from torch.utils.flop_counter import FlopCounterMode

    model = reference.make_mlp([40, 256, 256, 10], 0).to(device)
    leaf = torch.randn(128, 40, device=device, requires_grad=True)
    y = torch.randint(0, 10, (128,), device=device)
    with FlopCounterMode(display=False) as counter:
        x = leaf * 1.0  # FlopCounterMode cannot take autograd.grad w.r.t. a leaf
        if regularizer == "ssc":
            logits = model(x)
            (g,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), x, create_graph=True)
            loss = torch.nn.functional.cross_entropy(logits, y) + reference.ssc_term(g, y)
        else:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
    return counter.get_total_flops() / 128


def _median_seconds(fn, device: str, repeats: int) -> float:
    times = []
    for _ in range(repeats + 2):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def matmul_flops(device: str, n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Dense float32 n x n matmul FLOP/s (median over repeats) with the current threads, per library."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out = {"torch.matmul": 2 * n**3 / _median_seconds(lambda: a @ b, device, repeats)}
    onednn = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if device == "cpu" else None
    if onednn is not None and torch.backends.mkldnn.is_available():
        bt = b.t().contiguous()
        out["oneDNN"] = 2 * n**3 / _median_seconds(lambda: onednn(a, bt, None, "none", [], ""), device, repeats)
    return out


def measure(kind: str, args: argparse.Namespace) -> dict:
    """One row's measurement, in this process: ``kind`` is an implementation, "matmul" or a protocol."""
    if kind == "matmul":
        # the tiny size only checks that the benchmark runs: a small matmul (its peak is not read)
        out = {"flops": matmul_flops(args.device, n=512 if args.size == "tiny" else 2048)}
    elif kind == "protocol":
        return run_reproduce(args.size, args.device)
    elif kind == "plain-protocol":
        import reference

        from sscbench import data
        from sscbench.spec import DataSpec

        dataset = data.load(DataSpec())
        out = {"results": reference.plain_protocol(dataset, *protocol_size(args.size))}
    else:
        # Warm up first (imports, data cache, thread pools, first-call costs of autograd and the
        # kernels): one-time costs are not what the rows compare, and the timed work is short.
        run_work(kind, args.size, args.device, samples=WARMUP_SAMPLES)
        out = {"seconds": run_work(kind, args.size, args.device)}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


ROW = "bench-row "  # marks a child's result lines among anything else it prints


def worker(args: argparse.Namespace) -> None:
    """A child's work: one measurement per kind named ("|" between them), one JSON line each."""
    torch.set_num_threads(args.threads)
    for kind in args.worker.split("|"):
        print(ROW + json.dumps(measure(kind, args)), flush=True)


def spawn(kind: str, args: argparse.Namespace, threads: int) -> dict:
    """A measurement in a fresh process, so that no row inherits another's warm caches or memory."""
    return spawn_many([kind], args, threads)[0]


def spawn_many(kinds: list[str], args: argparse.Namespace, threads: int) -> list[dict]:
    """Measurements in a fresh process each, or, at the tiny size (a check that the benchmark runs, whose
    numbers nobody reads), all in one process: one start-up instead of one per row."""
    if args.size != "tiny":
        return [spawn_one([kind], args, threads)[0] for kind in kinds]
    return spawn_one(kinds, args, threads)


def spawn_one(kinds: list[str], args: argparse.Namespace, threads: int) -> list[dict]:
    cmd = [sys.executable, __file__, "--worker", "|".join(kinds), "--size", args.size, "--device", args.device,
           "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    rows = [json.loads(line[len(ROW):]) for line in done.stdout.splitlines() if line.startswith(ROW)]
    assert len(rows) == len(kinds), done.stdout
    return rows


def reproduce_command(size: str, device: str, out: str) -> list[str]:
    trials, tune_epochs, seeds, epochs = protocol_size(size)
    options = [] if size == "default" else ["--trials", str(trials), "--tune-epochs", str(tune_epochs),
                                            "--seeds", str(seeds), "--epochs", str(epochs)]
    return [str(Path(sys.executable).parent / "sscbench"), "reproduce", *options, "--device", device, "--out", out]


def run_reproduce(size: str, device: str) -> dict:
    """``sscbench reproduce`` as this worker's only child: wall seconds and the child's peak memory."""
    with tempfile.TemporaryDirectory() as out:
        cmd = reproduce_command(size, device, out)
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        wall = time.perf_counter() - start
    return {"command": " ".join(["sscbench", *cmd[1:-2]]), "seconds": wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny size CI runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="sub-stacks at once for the second sscbench row")
    parser.add_argument("--skip-protocol", action="store_true", help="do not time `sscbench reproduce`")
    parser.add_argument("--plain-protocol", action="store_true",
                        help="also time the protocol written as a plain script (about 2 more minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.worker:
        return worker(args)
    args.size = "tiny" if args.tiny else "default"
    cfg = SIZES[args.size]
    repeats = args.repeats or cfg["repeats"]

    from rich.console import Console
    from rich.table import Table

    console = Console()
    impls = implementations(args.workers)
    order = impls + WORKLOAD_ROWS
    if args.size != "tiny":
        spawn("sscbench", args, args.threads)  # warm the data cache outside the timings
    runs: dict[str, list[dict]] = {impl: [] for impl in order}
    matmuls = []
    for r in range(repeats):  # round-robin, so drift hits every implementation alike
        measured = spawn_many(["matmul", *order], args, args.threads)
        matmuls.append(measured[0]["flops"])
        for impl, out in zip(order, measured[1:], strict=True):
            runs[impl].append(out)
            console.log(f"repeat {r + 1}/{repeats} {impl}: {out['seconds']:.2f} s")
    peaks = {lib: statistics.median(m[lib] for m in matmuls) for lib in matmuls[0]}
    best = max(peaks.values())

    samples = {reg: sum(m * e for r, m, e in cfg["work"] if r == reg) * cfg["samples"] for reg in ("baseline", "ssc")}
    per_sample = {reg: flops_per_sample(reg, args.device) for reg in samples}
    model_flops = sum(samples[reg] * per_sample[reg] for reg in samples)
    total_samples = sum(samples.values())
    rows = []
    for impl in impls:
        secs = statistics.median(r["seconds"] for r in runs[impl])
        rows.append({"implementation": impl, "seconds_median": secs,
                     "seconds_all": [r["seconds"] for r in runs[impl]],
                     "samples_per_second": total_samples / secs,
                     "mfu": model_flops / secs / best,
                     "mfu_per_library": {lib: model_flops / secs / f for lib, f in peaks.items()},
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[impl])})
    ours = rows[0]["seconds_median"]
    for row in rows:
        row["speedup_of_sscbench"] = row["seconds_median"] / ours
    median = {impl: statistics.median(r["seconds"] for r in runs[impl]) for impl in WORKLOAD_ROWS}
    workload_rows = [
        {"implementation": impl, "seconds_median": median[impl], "seconds_all": [r["seconds"] for r in runs[impl]],
         "samples_per_second": total_samples / median[impl],
         "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[impl]),
         "compared_with": other, "ratio": median[impl] / other_seconds}
        for impl, other, other_seconds in [
            ("sscbench cnn", "sscbench cnn", median["sscbench cnn"]),
            ("plain cnn", "sscbench cnn", median["sscbench cnn"]),
            ("sscbench mlp, generic stack", "sscbench", ours)]]
    protocol = None if args.skip_protocol else spawn("protocol", args, args.threads)
    plain_protocol = None
    if args.plain_protocol:  # timed from outside, like `sscbench reproduce`: start-up and data loading included
        start = time.perf_counter()
        plain_protocol = spawn("plain-protocol", args, args.threads) | {"command": "benchmarks/reference.py"}
        plain_protocol["seconds"] = time.perf_counter() - start

    table = Table(title=f"Same work ({args.size}): {cfg['work']} on {cfg['samples']} samples, "
                        f"{args.threads} threads, {args.device}, {cpu_label()}")
    mfu_cols = [f"MFU vs {lib}" for lib in peaks]
    for col in ("implementation", "wall s (median)", "samples/s", *mfu_cols, "peak RSS MB", "sscbench speed-up"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(row["implementation"], f"{row['seconds_median']:.2f}", f"{row['samples_per_second']:,.0f}",
                      *(f"{100 * row['mfu_per_library'][lib]:.1f}%" for lib in peaks),
                      f"{row['peak_rss_mb']:.0f}", f"{row['speedup_of_sscbench']:.2f}x")
    console.print(table)
    wtable = Table(title="Workloads: the mnist1d-cnn stack against a plain loop, and the MLP through the generic stack")
    for col in ("implementation", "wall s (median)", "samples/s", "peak RSS MB", "time / compared row"):
        wtable.add_column(col, justify="right")
    for row in workload_rows:
        wtable.add_row(row["implementation"], f"{row['seconds_median']:.2f}", f"{row['samples_per_second']:,.0f}",
                       f"{row['peak_rss_mb']:.0f}", f"{row['ratio']:.2f}x of {row['compared_with']}")
    console.print(wtable)
    console.print("dense float32 matmul, " + ", ".join(f"{lib}: {f / 1e9:.1f} GFLOP/s" for lib, f in peaks.items())
                  + "; the MFU recorded is against the faster")
    if protocol:
        console.print(f"{protocol['command']}: {protocol['seconds']:.1f} s wall, "
                      f"peak RSS {protocol['peak_rss_mb']:.0f} MB")
    if plain_protocol:
        console.print(f"the same protocol as a plain script (one model at a time, study.optimize): "
                      f"{plain_protocol['seconds']:.1f} s wall, peak RSS {plain_protocol['peak_rss_mb']:.0f} MB")
    report = {
        "machine": {"platform": platform.platform(), **cpu_fields(),
                    "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
                    "threads": args.threads, "device": args.device, "torch": torch.__version__,
                    "python": platform.python_version(),
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
        "size": args.size, "work": cfg["work"], "samples_per_epoch": cfg["samples"], "repeats": repeats,
        "matmul_flops": best, "matmul_flops_per_library": peaks, "model_flops_per_sample": per_sample,
        "rows": rows, "workload_rows": workload_rows, "protocol": protocol, "plain_protocol": plain_protocol,
    }
    from sscbench.output.results import write_atomic

    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
