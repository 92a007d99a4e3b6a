"""`slmbench sustain`: how much of its burst speed a device keeps under continuous load."""

from __future__ import annotations

import argparse
import json
import os
import sys

DESCRIPTION = """\
Run one workload back to back for --duration on one model load and record, every --window:
prefill and decode tokens/s, per-token latency p50/p90, temperatures, clocks, power and energy
per token where the device has sensors, and throttle flags. Phones lose a large part of their
decode speed within seconds to minutes; this answers "what speed do I get after 10 minutes?".

workloads (each iteration starts from an empty KV cache):
  tgN         generate N tokens one by one (llama-bench's tgN)
  ppN         prefill N prompt tokens
  chat:P/G    prefill P tokens, then generate G tokens after them (what an assistant does);
              P/G or a preset (autocomplete, chat, summarize, rag) means the same

Reported: burst speed (the first window), sustained speed (median of the last 20% of the
windows, at least 3), % of burst retained, when the speed first fell below 90% of burst (or
never), the window-to-window CV, temperature and clock in the first and last window, energy per
token first vs last. --start-cool C first waits (up to --start-cool-timeout) until the hottest
sensor is below C degrees and records the starting temperature.

The run is a run directory like `slmbench run`'s (report, compare and history read it); every
window is fsynced to RESULTS/<run-id>/sustain/<record-id>.jsonl the moment it ends, so a kill
keeps the windows done. Ctrl-C stops early and keeps what was measured as the result.
A suite gets the same test per model file with its `sustained:` key (docs/sustain.md).

examples:
  slmbench sustain model.gguf --duration 10m
  slmbench sustain model.gguf --duration 60s --window 5s -t 2
  slmbench sustain model.gguf --workload chat:512/128 --start-cool 45 --duration 15m
  slmbench sustain model.gguf --workload pp512 --duration 5m --json > sustained.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from slmbench.config import SUSTAINED_DEFAULTS as D

    p.add_argument("files", nargs="+", metavar="FILE.gguf", help="GGUF model file(s)")
    w = p.add_argument_group("the workload")
    w.add_argument("--duration", metavar="D", help=f"how long, e.g. 60s, 10m, 1h (default "
                                                   f"{D['duration']})")
    w.add_argument("--window", metavar="W", help=f"one record per window (default {D['window']})")
    w.add_argument("--workload", metavar="tgN|ppN|chat:P/G",
                   help=f"what runs back to back (default {D['workload']})")
    w.add_argument("--start-cool", metavar="C",
                   help="first wait until the hottest sensor is below C degrees")
    w.add_argument("--start-cool-timeout", metavar="D",
                   help=f"... for at most D, then start anyway (default "
                        f"{D['start_cool_timeout']})")
    s = p.add_argument_group("llama.cpp settings")
    s.add_argument("-t", "--threads", type=int, metavar="T",
                   help="threads (default 0 = physical cores)")
    s.add_argument("-ngl", "--n-gpu-layers", type=int, metavar="L",
                   help="layers offloaded to the GPU (default 0)")
    s.add_argument("--cache-type", metavar="TYPE", help="KV cache type, TYPE or K/V (default f16)")
    s.add_argument("-fa", "--flash-attn", metavar="auto|on|off", help="flash attention")
    o = p.add_argument_group("output")
    o.add_argument("--results", default="results", metavar="DIR",
                   help="results directory (default ./results)")
    o.add_argument("--run-id", metavar="RUN_ID", help="name of the run (default run-<time>-<pid>)")
    o.add_argument("--json", action="store_true", help="print the records as JSON on stdout")
    o.add_argument("--verbose", action="store_true", help="also print llama.cpp's log")


def run(args: argparse.Namespace) -> int:
    from slmbench import api
    from slmbench.schema import to_dict
    from slmbench.sustained import format_sustained

    settings = {k: [v] for k, v in (
        ("threads", args.threads), ("n_gpu_layers", args.n_gpu_layers),
        ("cache_type", args.cache_type), ("flash_attn", args.flash_attn)) if v is not None}
    if args.verbose:
        from slmbench.llama_backend import LOG_ENV

        os.environ[LOG_ENV] = "1"
    result = api.sustain(args.files, duration=args.duration, window=args.window,
                         workload=args.workload, start_cool=args.start_cool,
                         start_cool_timeout=args.start_cool_timeout, results_dir=args.results,
                         run_id=args.run_id, argv=sys.argv, verbose=args.verbose,
                         from_command_line=True, **settings)
    records = [r for r in result.records if any(t.test == "sustained" for t in r.tests)
               or r.status != "ok"]
    if args.json:
        json.dump([to_dict(r) for r in records], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for rec in records:
            name = rec.model.file_name if rec.model else rec.model_id
            print(f"{name} ({rec.quant}, {rec.settings.n_threads if rec.settings else '?'} "
                  f"threads): {rec.status}" + (f": {rec.reason}" if rec.reason else ""))
            for t in rec.tests:
                if t.sustained is not None:
                    print(format_sustained(t))
            print()
        print(f"results in {result.run_dir} (windows in {result.run_dir}/sustain/)")
    if result.status == "interrupted":
        return 130
    return 0 if records and all(r.status == "ok" for r in records) else 1
