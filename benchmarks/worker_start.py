"""Where a worker's start-up time goes, and what forking from the fork server leaves of it.

Each row starts a fresh Python that runs the given code and then prints a line; the time is
from the start of the process to that line (so interpreter teardown is not counted), median of
-n runs with min and max.  Rows are cumulative: each adds one step to the one above.
Then: a spawned and a forked worker on a tiny synthetic model (start -> 'ready', as the runner
reports it), and the fork server's own start.

    python benchmarks/worker_start.py -n 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

STEPS = [
    ("interpreter, no site (-S)", "", ["-S"]),
    ("interpreter + site", "", []),
    ("+ import numpy", "import numpy", []),
    ("+ import llama_cpp", "import numpy, llama_cpp", []),
    ("+ import gguf", "import numpy, llama_cpp, gguf", []),
    ("+ import slmbench.sensors", "import numpy, llama_cpp, gguf, slmbench.sensors", []),
    ("+ slmbench.measure, .quality", "import numpy, llama_cpp, gguf, slmbench.sensors, "
     "slmbench.measure, slmbench.quality", []),
    ("+ llama.cpp backend init (= preload)", "from slmbench.worker import preload; preload()", []),
]


def time_to_line(code: str, flags: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *flags, "-c",
                             f"{code}\nimport os, sys\nsys.stdout.write('r\\n')\nsys.stdout.flush()"
                             "\nos._exit(0)"], stdout=subprocess.PIPE)
    proc.stdout.readline()
    dt = 1000 * (time.perf_counter() - t0)
    proc.wait()
    proc.stdout.close()
    return dt


def row(name: str, values: list[float]) -> None:
    print(f"{name:42s} median {statistics.median(values):7.1f} ms  "
          f"(min {min(values):.1f}, max {max(values):.1f}, n={len(values)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=15, help="runs per row (default 15)")
    args = ap.parse_args()
    for name, code, flags in STEPS:
        row(name, [time_to_line(code, flags) for _ in range(args.n)])

    from slmbench import isolate
    from slmbench.suite import expand, parse_suite
    from slmbench.synth import SynthSpec, synthesize

    tmp = tempfile.mkdtemp(prefix="slmbench-start-")
    path = synthesize(os.path.join(tmp, "tiny.gguf"),
                      SynthSpec(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=768,
                                n_vocab=4096, n_ctx=2048), ["Q8_0"])["Q8_0"]
    (cfg,) = expand(parse_suite({"models": [path], "n_prompt": [16], "n_gen": [4],
                                 "repetitions": 1, "warmup": 0, "threads": 1}))
    payload = cfg.worker_payload(path, None)
    for method in ("spawn", "fork"):
        os.environ["SLMBENCH_WORKER_START"] = method
        starts, server = [], []
        for _ in range(args.n + 1):
            record, info = isolate.run_isolated(payload, 60)
            assert record.status == "ok", record.reason
            if "server_start_ms" in info:
                server.append(info["server_start_ms"])
            else:
                starts.append(info["start_ms"])
        row(f"worker start, {method} (start -> ready)", starts)
        if method == "fork":
            for _ in range(min(args.n, 5) - 1):
                isolate.shutdown()
                server.append(isolate.run_isolated(payload, 60)[1]["server_start_ms"])
            row("fork server start (once per sweep)", server)
        isolate.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
