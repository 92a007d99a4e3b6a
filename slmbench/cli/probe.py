"""`slmbench probe`: measure this device's costs once, for `slmbench predict`."""

from __future__ import annotations

import argparse
import json

from slmbench.predict import PROBE_NOISY_SHARE, PROBE_ROUNDS, PROBE_ROUNDS_AGREE_PCT

NOISY_PCT = f"{100 * PROBE_NOISY_SHARE:.0f}"
DESCRIPTION = f"""\
Measure what a model's cost is made of on this device, through llama.cpp itself: the read
bandwidth, and - on synthetic models whose every weight has one type (F16, Q8_0, Q6_K, Q5_K,
Q4_K, Q4_0, Q3_K, quantized --pure by llama.cpp) and on tiny models - the seconds per byte of
weights of each type in decode, per FLOP in a 128-token prefill (and how that grows with the
model's layer count), the fixed cost per token, per layer and per matmul output row, what weights
streamed from DRAM cost per row and per layer besides their bytes, the cost of
attending to the KV cache (from the caches, and from DRAM after the weights evicted it), the
work Gemma-3's layers do besides a llama layer's, and the compute buffer and runtime memory.
`slmbench predict` turns these into the speed and memory of any GGUF before you download it.

The probe is stored under ~/.cache/slmbench/probes/ (SLMBENCH_CACHE moves it) per CPU,
llama.cpp build and thread count, and reused until one of them changes or slmbench's probe
version does; --force measures again. The probe's synthetic models (~6.4 GB, written once)
live beside it. Every timed model is measured in {PROBE_ROUNDS} rounds, one after the other, and
once more where two disagree by more than {PROBE_ROUNDS_AGREE_PCT:g} %; the median is kept (a
model's speed moves from one minute to the next on a shared machine): 1.5-2 minutes per thread
count on a 2-vCPU VM. Run it on a quiet machine: its numbers are the calibration of every
prediction. The probe says how far its rounds agreed; where more than {NOISY_PCT} % of its
models' rounds disagreed the machine was noisy, and `probe`, `predict` and predicted-vs-measured
warn that predictions from it can miss by more than their band. Method and measured accuracy:
docs/prediction.md.

examples:
  slmbench probe                 # at the default thread count
  slmbench probe -t 1,2 --force
  slmbench probe --json | jq '.costs[0].decode.per_type'
  slmbench probe --json | jq '.costs[].noise'   # how far the rounds agreed
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--threads", default=None, metavar="T[,T...]",
                   help="thread counts to probe (default: slmbench's default thread count)")
    p.add_argument("--force", action="store_true", help="measure again even if stored")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def parse_threads(text: str | None) -> list[int]:
    from slmbench.config import default_threads
    from slmbench.errors import ConfigError

    if not text:
        return [default_threads()]
    try:
        out = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ConfigError(f"-t/--threads: expected numbers like 1,2, got {text!r}") from None
    if not out or min(out) < 1:
        raise ConfigError(f"-t/--threads: thread counts must be >= 1, got {text!r}")
    return out


def run(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import asdict

    from slmbench.api import probe_device
    from slmbench.predict import format_probe

    threads = parse_threads(args.threads)
    probe = probe_device(threads, force=args.force,
                         progress=None if args.json else
                         (lambda m: print(f"probe: {m}", file=sys.stderr, flush=True)))
    if args.json:
        print(json.dumps(asdict(probe), indent=1))
    else:
        print(format_probe(probe))
    return 0
