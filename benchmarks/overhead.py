"""Runner overhead: a 12-config synthetic sweep, wall time vs the time spent measuring.

Every config runs in its own worker process (isolation, clean memory figures); this measures
what that costs.  Reported:

  total wall         the whole `Runner.run()` (env capture, workers, records, manifest)
  load + tests       sum over configs of model load + context creation + every timed sample
  ratio              total wall / (load + tests); target <= 1.05
  worker start       start -> 'ready' per config (median; target <= 30 ms when forked):
                     fork = request to the fork server -> the child's 'ready';
                     spawn = Python start, imports, llama.cpp init
  fork server start  once per sweep, before the first worker (imports + llama.cpp init)
  worker other       worker wall - start - load - tests: sampler/sensor start-up, untimed
                     input preparation between repetitions, statistics, writing the record

Warm-up runs are switched off (--warmup 0) so that "tests" is all the measuring work there is;
the synthetic models are written before the clock starts.

    python benchmarks/overhead.py                 # 3 shapes x 2 quants x 2 thread counts
    python benchmarks/overhead.py --threads 1 -r 5
    python benchmarks/overhead.py --start spawn   # workers started the old way, to compare
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

from slmbench.runner import Runner
from slmbench.suite import parse_suite

SHAPES = [
    ("ovh-e512-l4", {"n_embd": 512, "n_layer": 4, "n_head": 8, "n_head_kv": 4, "n_ff": 1536,
                     "n_vocab": 8192}),
    ("ovh-e768-l6", {"n_embd": 768, "n_layer": 6, "n_head": 12, "n_head_kv": 4, "n_ff": 2048,
                     "n_vocab": 8192}),
    ("ovh-e1024-l8", {"n_embd": 1024, "n_layer": 8, "n_head": 16, "n_head_kv": 4, "n_ff": 2816,
                      "n_vocab": 16384}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="thread counts to sweep (default 1,2)")
    ap.add_argument("-p", default="128,512", help="prompt lengths (default 128,512)")
    ap.add_argument("-n", default="64", help="generation lengths (default 64)")
    ap.add_argument("-r", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/slmbench/overhead"))
    ap.add_argument("--results", default=None, help="results dir (default: a temp dir)")
    ap.add_argument("--start", choices=("fork", "spawn"), default=None,
                    help="how workers start (default: SLMBENCH_WORKER_START, else fork on Linux)")
    args = ap.parse_args()
    if args.start:
        os.environ["SLMBENCH_WORKER_START"] = args.start

    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    suite = parse_suite({
        "name": "overhead",
        "models": [{"name": name, "synthetic": shape} for name, shape in SHAPES],
        "quants": ["Q8_0", "Q4_K_M"], "threads": ints(args.threads), "n_prompt": ints(args.p),
        "n_gen": ints(args.n), "repetitions": args.r, "warmup": 0})
    results = args.results or tempfile.mkdtemp(prefix="slmbench-overhead-")
    runner = Runner(suite, results_dir=results, synth_dir=args.cache_dir, stream=io.StringIO(),
                    tty=False)
    print(f"{len(runner.configs)} configs; writing the synthetic models first ...", flush=True)
    for cfg in runner.configs:  # synthesis is not runner overhead
        runner.model_path(cfg)

    t0 = time.perf_counter()
    result = runner.run()
    wall = time.perf_counter() - t0

    load_s = tests_s = 0.0
    starts, others, worker_walls, methods, server_ms = [], [], [], set(), []
    for rec in result.records:
        if rec.status != "ok":
            print(f"config {rec.config_index} {rec.status}: {rec.reason}")
            continue
        w = rec.worker
        load = (rec.load.load_ms + rec.load.ctx_ms) / 1000
        tests = sum(sum(t.samples_ns) for t in rec.tests) / 1e9
        load_s += load
        tests_s += tests
        starts.append(w.start_ms)
        methods.add(w.start_method or "spawn")
        if rec.worker and rec.worker.server_start_ms is not None:
            server_ms.append(rec.worker.server_start_ms)
        worker_walls.append(w.wall_s)
        others.append(w.wall_s - w.start_ms / 1000 - load - tests)
    measured = load_s + tests_s
    print(f"configs ok          {len(starts)} / {len(result.records)}")
    print(f"total wall          {wall:8.2f} s")
    print(f"load + tests        {measured:8.2f} s  (load {load_s:.2f} s, tests {tests_s:.2f} s)")
    print(f"ratio               {wall / measured:8.3f}x  (target <= 1.05)")
    print(f"sum of worker walls {sum(worker_walls):8.2f} s  (runner outside workers: "
          f"{wall - sum(worker_walls):.2f} s)")
    print(f"worker start        median {statistics.median(starts):.1f} ms, "
          f"min {min(starts):.1f}, max {max(starts):.1f} ms "
          f"({'/'.join(sorted(methods))} -> ready; target <= 30 ms)")
    if server_ms:
        print(f"fork server start   {', '.join(f'{x:.0f}' for x in server_ms)} ms "
              "(once per sweep, before the first worker)")
    print(f"worker other        median {1000 * statistics.median(others):.0f} ms per config "
          "(untimed work inside the worker)")
    print(f"results in {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
