"""Workers sharing one study: throughput, the database's cost per trial and round, and a model for N machines.

Run with ``make bench-workers`` (a throwaway PostgreSQL is started for it; ``--tiny`` is the size
the suite runs, on 1500 samples). Three measurements, all in one invocation, and ``results/bench-workers.json``:

1. Throughput: one tuning study (ssc; trials in rounds of ``round``) run to completion by
   1 process on SQLite, 1 process on PostgreSQL, 2 processes on PostgreSQL (1 intra-op thread
   each) and 1 process on PostgreSQL with ``--workers 2``; repeats round-robin, medians.
2. Database cost: the same study with training replaced by a stub that returns at once, in
   this process, counting every SQL statement and the time spent in them (SQLAlchemy's cursor
   events) and the time the study's lock is held; per round and per trial.
3. A model for W workers on separate machines: each worker trains a round in T seconds (from
   1, scaled to the protocol's 10 members x 15 epochs) and spends D seconds on everything else
   a round costs (from 2: SQL, sampling, bookkeeping), of which L under the study's lock.
   With U rounds available at once (every study of a compare: R replicates x 2 arms x
   trials / round), the speed-up over one worker is min(W, U) x T / (T + D), as long as the
   lock is far from saturated (W / studies x L << T + D; the ratio is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The default size trains on the protocol's data; the tiny one (a check that the benchmark runs) on 1500 samples.
SIZES = {"default": {"trials": 20, "epochs": 3, "round": 5, "repeats": 3, "data": {}},
         "tiny": {"trials": 4, "epochs": 1, "round": 2, "repeats": 1,
                  "data": {"num_samples": 1500, "validation_size": 200}}}
CLI = [sys.executable, "-m", "sscbench.cli"]


def fresh_database(admin_url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.replace("/sscbench?", f"/{name}?") if "/sscbench?" in admin_url else admin_url


def run_config(name: str, url: str | None, cfg: dict, work: Path) -> float:
    """Wall seconds for the configuration to finish the study."""
    base = ["tune", "ssc", "--trials", str(cfg["trials"]), "--epochs", str(cfg["epochs"]),
            "--round-size", str(cfg["round"]), "--study-name", "bench"]
    out = work / uuid.uuid4().hex[:8]
    if cfg["data"]:
        spec = work / "data.toml"
        spec.write_text("[data]\n" + "".join(f"{key} = {value}\n" for key, value in cfg["data"].items()))
        base += ["--spec", str(spec)]
    procs, env = [], dict(os.environ)
    if name == "2 processes, PostgreSQL":
        env |= {"OMP_NUM_THREADS": "1"}
        argvs = [[*CLI, *base, "--storage", url, "--threads", "1", "--out", str(out / f"w{k}")] for k in range(2)]
    elif name == "1 process --workers 2, PostgreSQL":
        argvs = [[*CLI, *base, "--storage", url, "--workers", "2", "--out", str(out)]]
    elif name == "1 process, PostgreSQL":
        argvs = [[*CLI, *base, "--storage", url, "--out", str(out)]]
    else:
        argvs = [[*CLI, *base, "--out", str(out)]]
    start = time.perf_counter()
    for argv in argvs:
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{name} failed: {err}")
    return time.perf_counter() - start


def database_cost(url: str, cfg: dict) -> dict:
    """SQL statements and seconds per round and per trial, with training stubbed out."""
    import numpy as np
    from sqlalchemy import event

    from sscbench.contracts import registry, task
    from sscbench.engine.trainer import History
    from sscbench.spec import build_spec
    from sscbench.stages import storage, tuning

    spec = build_spec(overrides={"tune": {"trials": cfg["trials"], "round_size": cfg["round"]}, "data": cfg["data"]})
    opened = storage.open_storage(url, spec.storage)
    counts = {"statements": 0, "seconds": 0.0, "lock_seconds": 0.0}
    starts: list[float] = []

    @event.listens_for(opened.rdb.engine, "before_cursor_execute")
    def _before(*_args):
        starts.append(time.perf_counter())

    @event.listens_for(opened.rdb.engine, "after_cursor_execute")
    def _after(*_args):
        counts["statements"] += 1
        counts["seconds"] += time.perf_counter() - starts.pop()

    real_serial = opened.serial

    def timed_serial(study):
        from contextlib import contextmanager

        @contextmanager
        def block():
            with real_serial(study):
                t0 = time.perf_counter()
                try:
                    yield
                finally:
                    counts["lock_seconds"] += time.perf_counter() - t0
        return block()

    opened.serial = timed_serial

    def stub(train, widths, members, *args, **kwargs):
        return History(np.zeros((len(members), 1)), np.zeros((len(members), 1)),
                              {"validation": np.linspace(0.5, 0.6, len(members))[:, None]}, [None] * len(members),
                              0, None, [None] * len(members), [1] * len(members))

    real, tuning.train_stack = tuning.train_stack, stub
    try:
        start = time.perf_counter()
        tuning.run_study(task.resolve_run(spec, ["ssc"]), registry.load("ssc"), opened,
                         f"cost-{uuid.uuid4().hex[:6]}", 0)
        wall = time.perf_counter() - start
    finally:
        tuning.train_stack = real
    rounds = -(-cfg["trials"] // cfg["round"])
    return {"rounds": rounds, "trials": cfg["trials"], "statements": counts["statements"],
            "db_seconds": counts["seconds"], "lock_seconds": counts["lock_seconds"], "wall_seconds": wall,
            "statements_per_round": counts["statements"] / rounds, "ms_per_round": 1e3 * wall / rounds,
            "ms_per_trial": 1e3 * wall / cfg["trials"], "lock_ms_per_round": 1e3 * counts["lock_seconds"] / rounds}


def model(train_round_s: float, db_round_s: float, lock_round_s: float, workers: int, units: int,
          studies: int) -> dict:
    speedup = min(workers, units) * train_round_s / (train_round_s + db_round_s)
    lock_load = (workers / max(1, studies)) * lock_round_s / (train_round_s + db_round_s)
    return {"workers": workers, "speedup": speedup, "lock_utilisation": lock_load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("SSCBENCH_TEST_POSTGRES"),
                        help="admin URL of a PostgreSQL server (default: $SSCBENCH_TEST_POSTGRES)")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench-workers.json")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("no PostgreSQL: run `make bench-workers`, or give --postgres URL")
    cfg = SIZES["tiny" if args.tiny else "default"]
    names = ["1 process, SQLite", "1 process, PostgreSQL", "2 processes, PostgreSQL",
             "1 process --workers 2, PostgreSQL"]
    times: dict[str, list[float]] = {n: [] for n in names}
    round_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(cfg["repeats"]):
            for name in names:  # round-robin, a fresh database each time
                url = fresh_database(args.postgres) if "PostgreSQL" in name else None
                times[name].append(run_config(name, url, cfg, Path(tmp)))
            for path in Path(tmp).glob("*/tune-ssc.json"):  # the rounds of the single-process runs
                trials = json.loads(path.read_text())["studies"][0]["trials"]
                round_seconds.extend(t["duration_s"] for t in trials[::cfg["round"]])
                path.unlink()
    rows = []
    for name in names:
        med = statistics.median(times[name])
        rows.append({"configuration": name, "seconds": times[name], "seconds_median": med,
                     "trials_per_second": cfg["trials"] / med})
    cost = database_cost(fresh_database(args.postgres), cfg)
    rounds = cost["rounds"]
    # T: the protocol's round (10 members x 15 epochs), scaled from this run's rounds (stack time grows
    # about linearly with members and epochs; start-up excluded, since a worker starts once).
    bench_round = statistics.median(round_seconds)
    train_round = bench_round * (10 * 15) / (cfg["round"] * cfg["epochs"])
    # D: everything a round costs besides training (SQL, Optuna's sampling and bookkeeping), from the stub run.
    db_round, lock_round = cost["wall_seconds"] / rounds, cost["lock_seconds"] / rounds
    # The default compare: R replicates x 2 arms x (30 trials / 10 per round) rounds can run at once.
    models = {f"compare R={r}": [model(train_round, db_round, lock_round, w, r * 2 * 3, r * 2) for w in (8, 32, 128)]
              for r in (10, 100)}
    report = {"size": "tiny" if args.tiny else "default", "study": cfg, "rows": rows, "database": cost,
              "model": {"bench_round_seconds": bench_round, "train_round_seconds": train_round,
                        "db_round_seconds": db_round,
                        "lock_round_seconds": lock_round, "cases": models}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    ref = rows[0]["seconds_median"]
    print(f"one ssc study, {cfg['trials']} trials x {cfg['epochs']} epochs in rounds of {cfg['round']}:")
    for row in rows:
        print(f"  {row['configuration']:36s} {row['seconds_median']:7.2f} s  {row['trials_per_second']:6.2f} trials/s"
              f"  {ref / row['seconds_median']:.2f}x")
    print(f"per round besides training (training stubbed): {cost['statements_per_round']:.0f} SQL statements "
          f"taking {1e3 * cost['db_seconds'] / rounds:.1f} ms, {cost['lock_ms_per_round']:.1f} ms under the study's "
          f"lock, {cost['ms_per_round']:.1f} ms all told ({cost['ms_per_trial']:.1f} ms per trial)")
    print(f"model: a protocol round trains T = {train_round:.1f} s and costs D = {1e3 * db_round:.0f} ms besides")
    for case, entries in models.items():
        print(f"  modelled {case}: " + ", ".join(
            f"{e['workers']} workers {e['speedup']:.1f}x (lock {100 * e['lock_utilisation']:.2f}% busy)"
            for e in entries))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
