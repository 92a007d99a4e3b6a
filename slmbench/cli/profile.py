"""`slmbench profile`: where the time goes, operator by operator, inside llama.cpp."""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = """\
Time every node of llama.cpp's compute graph for a prefill of N tokens and for M single-token
decodes (at depth D), inside llama.cpp's own scheduler (its evaluation callback), and add the
nodes up by operator class:

  matmul TYPE   matrix multiplications against weights, by weight type (Q4_K, Q8_0, F16 ...),
                with the bytes of weights read per token and the GB/s achieved
  output TYPE   the output projection onto the vocabulary (what a large vocabulary costs)
  attention     QK and KV matmuls, softmax, flash attention
  kv_copy       writing K and V into the cache
  norm, rope, elementwise, embedding (GET_ROWS), other
  noise         what nodes took above their median time (a busy machine: other processes)
  unattributed  llama_decode's work outside every node (graph build, inputs, outputs)

Shares are of the profiled total; the same test also runs without the callback in the same
process (interleaved) and both totals are printed with the profiling overhead. Per block
(layer) times and the most expensive nodes follow. With two or more files (or a swept -t,
-ngl ...) the breakdowns are printed side by side with the difference per token per class:
"why is B slower than A". docs/profile.md explains the method and its limits.

examples:
  slmbench profile model.gguf
  slmbench profile model.gguf -p 512 -n 64 -d 1024 -t 4 -r 5
  slmbench profile a-Q4_K_M.gguf a-Q8_0.gguf --json > profiles.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from slmbench import config
    from slmbench.config import PROFILE_DEFAULTS

    p.add_argument("files", nargs="+", metavar="FILE.gguf", help="GGUF model files")
    t = p.add_argument_group("what to profile")
    t.add_argument("-p", "--n-prompt", dest="n_prompt", type=int,
                   default=PROFILE_DEFAULTS["n_prompt"], metavar="N",
                   help="prefill of N prompt tokens (0 = none; default %(default)s)")
    t.add_argument("-n", "--n-gen", dest="n_gen", type=int, default=PROFILE_DEFAULTS["n_gen"],
                   metavar="M", help="M single-token decodes (0 = none; default %(default)s)")
    t.add_argument("-d", "--n-depth", dest="n_depth", type=int,
                   default=PROFILE_DEFAULTS["n_depth"], metavar="D",
                   help="tokens already in the KV cache (default %(default)s)")
    t.add_argument("-r", "--repetitions", dest="repetitions", type=int,
                   default=PROFILE_DEFAULTS["repetitions"], metavar="R",
                   help="samples with and without the callback, interleaved (default "
                        "%(default)s)")
    config.add_arguments(p, "profile")
    o = p.add_argument_group("output")
    o.add_argument("--top", type=int, default=5, metavar="N",
                   help="most expensive nodes to list per phase (default %(default)s)")
    o.add_argument("--no-probe", dest="probe", action="store_false",
                   help="skip the memory-bandwidth probe (the 'of probe' column)")
    o.add_argument("--json", action="store_true", help="print JSON records instead of tables")


def run(args: argparse.Namespace) -> int:
    from slmbench import api, config
    from slmbench.errors import warn
    from slmbench.profile import format_comparison, format_record
    from slmbench.schema import to_dict

    tty = sys.stderr.isatty()

    def progress(msg: str) -> None:
        sys.stderr.write(f"\r\033[K{msg}")
        sys.stderr.flush()

    settings = {k: v for k, v in config.overrides_from_args(args).items()
                if k not in ("n_prompt", "n_gen", "n_depth", "repetitions")}
    records = api.profile_models(args.files, n_prompt=args.n_prompt, n_gen=args.n_gen,
                                 n_depth=args.n_depth, repetitions=args.repetitions,
                                 probe=args.probe, progress=progress if tty else None,
                                 _cli=True, **settings)
    if tty:
        sys.stderr.write("\r\033[K")
    if args.json:
        json.dump([to_dict(r) for r in records], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for rec in records:
            print(format_record(rec, top=args.top))
            print()
        comparison = format_comparison(records)
        if comparison:
            print(comparison)
    for rec in records if args.json else []:  # the tables say it otherwise
        if rec.status != "ok":
            warn(f"{rec.model_id}: {rec.reason}")
    return 0 if all(r.status == "ok" for r in records) else 1
