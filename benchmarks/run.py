"""sscbench's benchmark: the stacked trainer against plain per-model loops, on the same work.

Run with ``make bench`` (``make bench-tiny`` for the size CI runs). Prints a
table of wall time (median over repeats), samples per second, MFU and peak
memory with ratios, and writes ``results/bench.json`` with the machine's
description. Implementations run round-robin, each repeat in a fresh worker
process (so peak memory is its own), all in one invocation.

MFU = model training FLOP/s / dense float32 matmul FLOP/s of this machine,
measured in the same run with the same thread count. Model FLOPs per sample
are counted by ``torch.utils.flop_counter`` on one plain training step (one
forward, one saliency backward with create_graph, one backward), so every
implementation is charged the same useful work.
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
IMPLS = ("sscbench", "plain", "jacrev")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_train(samples: int):
    from sscbench import data
    from sscbench.spec import DataSpec

    ds = data.load(DataSpec())
    return ds.train.x[:samples].contiguous(), ds.train.y[:samples].contiguous()


def run_work(impl: str, size: str, device: str) -> float:
    """Train the size's work with one implementation; returns wall seconds."""
    import reference

    from sscbench import registry
    from sscbench.data import Split
    from sscbench.spec import TrainSpec
    from sscbench.trainer import Member, train_stack

    cfg = SIZES[size]
    x, y = load_train(cfg["samples"])
    x, y = x.to(device), y.to(device)
    widths = [40, 256, 256, 10]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for regularizer, models, epochs in cfg["work"]:
        lam = HP["lambda_ssc"] if regularizer == "ssc" else 0.0
        if impl == "sscbench":
            params = {"lambda_ssc": lam} if regularizer == "ssc" else {}
            members = [Member(s, HP["lr"], HP["weight_decay"], params) for s in range(models)]
            train_stack(Split(x, y), widths, members, registry.load(regularizer), epochs, TrainSpec(device=device))
        else:
            for s in range(models):
                reference.train_one(x, y, widths, s, HP["lr"], HP["weight_decay"], lam, epochs, 128, impl)
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


def matmul_flops(device: str, n: int = 2048, repeats: int = 10) -> float:
    """Dense float32 matmul FLOP/s (median over repeats) with the current threads."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for _ in range(repeats + 2):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times[2:])


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if args.worker == "matmul":
        out = {"flops": matmul_flops(args.device)}
    else:
        load_train(16)  # warm the data cache and imports before timing
        out = {"seconds": run_work(args.worker, args.size, args.device)}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def spawn(kind: str, args: argparse.Namespace, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--size", args.size, "--device", args.device,
           "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def spawn_pair(args: argparse.Namespace) -> float:
    """Two 1-thread sscbench workers, each doing the whole work, at once: wall seconds of the slower."""
    cmd = [sys.executable, __file__, "--worker", "sscbench", "--size", args.size, "--device", args.device,
           "--threads", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return max(o["seconds"] for o in outs)


def protocol_run(args: argparse.Namespace) -> dict:
    """``sscbench reproduce`` in a subprocess: wall seconds and peak memory of the whole protocol."""
    tiny = ["--trials", "2", "--tune-epochs", "1", "--seeds", "2", "--epochs", "1"] if args.size == "tiny" else []
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(Path(sys.executable).parent / "sscbench"), "reproduce", "--out", out,
               "--device", args.device, *tiny]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"command": " ".join(["sscbench reproduce", *tiny]), "seconds": wall,
            "peak_rss_mb": max(peak, before) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny size CI runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--skip-protocol", action="store_true", help="do not time `sscbench reproduce`")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.size = "tiny" if args.tiny else "default"
    cfg = SIZES[args.size]
    repeats = args.repeats or cfg["repeats"]

    from rich.console import Console
    from rich.table import Table

    console = Console()
    spawn("sscbench", args, args.threads)  # warm the data cache outside the timings
    peak = statistics.median(spawn("matmul", args, args.threads)["flops"] for _ in range(repeats))
    runs: dict[str, list[dict]] = {impl: [] for impl in IMPLS}
    for r in range(repeats):  # round-robin, so drift hits every implementation alike
        for impl in IMPLS:
            runs[impl].append(spawn(impl, args, args.threads))
            console.log(f"repeat {r + 1}/{repeats} {impl}: {runs[impl][-1]['seconds']:.2f} s")
    one_thread = [spawn("sscbench", args, 1)["seconds"] for _ in range(repeats)]
    two_workers = [spawn_pair(args) for _ in range(repeats)]  # the other way to use both cores

    samples = {reg: sum(m * e for r, m, e in cfg["work"] if r == reg) * cfg["samples"] for reg in ("baseline", "ssc")}
    model_flops = sum(samples[reg] * flops_per_sample(reg, args.device) for reg in samples)
    total_samples = sum(samples.values())
    rows = []
    for impl in IMPLS:
        secs = statistics.median(r["seconds"] for r in runs[impl])
        rows.append({"implementation": impl, "seconds_median": secs,
                     "seconds_all": [r["seconds"] for r in runs[impl]],
                     "samples_per_second": total_samples / secs, "mfu": model_flops / secs / peak,
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[impl])})
    ours = rows[0]["seconds_median"]
    for row in rows:
        row["speedup_of_sscbench"] = row["seconds_median"] / ours
    protocol = None if args.skip_protocol else protocol_run(args)

    table = Table(title=f"Same work ({args.size}): {cfg['work']} on {cfg['samples']} samples, "
                        f"{args.threads} threads, {args.device}")
    for col in ("implementation", "wall s (median)", "samples/s", "MFU", "peak RSS MB", "sscbench speed-up"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(row["implementation"], f"{row['seconds_median']:.2f}", f"{row['samples_per_second']:,.0f}",
                      f"{100 * row['mfu']:.1f}%", f"{row['peak_rss_mb']:.0f}", f"{row['speedup_of_sscbench']:.2f}x")
    console.print(table)
    pair = statistics.median(two_workers)
    console.print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s. Using the cores: sscbench with 1 thread "
                  f"{statistics.median(one_thread):.2f} s ({statistics.median(one_thread) / ours:.2f}x the "
                  f"{args.threads}-thread time); two 1-thread workers doing the work twice take {pair:.2f} s, "
                  f"i.e. {pair / 2:.2f} s per unit of work against {ours:.2f} s for one {args.threads}-thread process")
    if protocol:
        console.print(f"{protocol['command']}: {protocol['seconds']:.1f} s wall, "
                      f"peak RSS {protocol['peak_rss_mb']:.0f} MB")
    report = {
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "cores": os.cpu_count(),
                    "threads": args.threads, "device": args.device, "torch": torch.__version__,
                    "python": platform.python_version(),
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
        "size": args.size, "work": cfg["work"], "samples_per_epoch": cfg["samples"], "repeats": repeats,
        "matmul_flops": peak, "model_flops_per_sample": {r: flops_per_sample(r, args.device) for r in samples},
        "rows": rows, "sscbench_one_thread_seconds": one_thread,
        "two_one_thread_workers_seconds_for_twice_the_work": two_workers, "protocol": protocol,
    }
    from sscbench.results import write_atomic

    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
