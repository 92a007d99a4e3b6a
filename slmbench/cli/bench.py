"""`slmbench bench`: measure GGUF files directly, llama-bench style."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from slmbench.errors import SlmbenchError
from slmbench.gguf_info import model_id_from_file

HELP = "benchmark GGUF files directly (prefill, TTFT, decode, memory)"
DESCRIPTION = """\
Measure one or more GGUF files with llama.cpp, the way llama-bench does:

  pp N      prefill: evaluate N random prompt tokens into an empty KV cache (ms, tokens/s)
  ttftN     time to first token: prefill of N tokens + greedy pick of the first token
  tgM       decode: generate M tokens one by one (latency of every token kept: p50/p90/p99)
  @dD       the same after D tokens already in the context (depth; untimed fill)

Each test runs --warmup untimed runs, then -r timed repetitions; every raw sample is kept and
summarised as mean, median, stdev, CV and a 95% confidence interval (Student t). A CV above 5%
prints a warning: the machine was noisy. Memory: llama.cpp's own buffers (weights, KV cache,
compute, output) beside the process's resident memory (sampled at >= 100 Hz + kernel high-water
mark), the KV share and its projection to the training context.

Several files are measured one per worker process, so each gets clean memory accounting.

examples:
  slmbench bench model.gguf                          # pp512, tg128, like llama-bench
  slmbench bench model.gguf -p 64,256 -n 32 -d 0,1024 -t 2 -r 5
  slmbench bench a.gguf b.gguf --cache-type q8_0 --n-ctx 2048 --json > out.json
"""


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_settings_arguments(p: argparse.ArgumentParser) -> None:
    """Measurement options shared by `bench` and `run`."""
    g = p.add_argument_group("tests")
    g.add_argument("-p", "--n-prompt", type=int_list, default=[512], metavar="N[,N...]",
                   help="prompt lengths for prefill and TTFT tests (default 512)")
    g.add_argument("-n", "--n-gen", type=int_list, default=[128], metavar="M[,M...]",
                   help="generation lengths for decode tests (default 128; 0 = none)")
    g.add_argument("-d", "--n-depth", type=int_list, default=[0], metavar="D[,D...]",
                   help="context depths: tokens already in the KV cache (default 0)")
    g.add_argument("--no-ttft", action="store_true", help="skip the TTFT tests")
    g.add_argument("-r", "--repetitions", type=positive_int, default=5,
                   help="timed repetitions per test (default 5)")
    g.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    g.add_argument("--prompt", choices=("random", "text"), default="random",
                   help="random token ids like llama-bench (default) or a real English text")
    g.add_argument("--seed", type=int, default=42, help="seed of the random tokens (default 42)")
    s = p.add_argument_group("llama.cpp settings")
    s.add_argument("-t", "--threads", type=positive_int, default=None,
                   help="threads (default: physical cores, like llama-bench)")
    s.add_argument("--threads-batch", type=positive_int, default=None,
                   help="threads for prompt processing (default: = --threads)")
    s.add_argument("-b", "--batch-size", type=positive_int, default=2048,
                   help="logical batch size (default 2048)")
    s.add_argument("-ub", "--ubatch-size", type=positive_int, default=512,
                   help="physical batch size (default 512)")
    s.add_argument("--n-ctx", type=int, default=0,
                   help="context size (default: the longest test, prompt + gen + depth)")
    s.add_argument("-ngl", "--n-gpu-layers", type=int, default=0,
                   help="layers to offload to the GPU (default 0; 999 = all)")
    s.add_argument("-fa", "--flash-attn", choices=("auto", "on", "off"), default="auto")
    s.add_argument("--cache-type", default=None, metavar="TYPE",
                   help="KV cache type for both K and V: f16 (default), q8_0, q4_0, ...")
    s.add_argument("-ctk", "--cache-type-k", default="f16", metavar="TYPE")
    s.add_argument("-ctv", "--cache-type-v", default="f16", metavar="TYPE")
    s.add_argument("--load-mode", default="auto",
                   choices=("auto", "none", "mmap", "mlock", "mmap+mlock", "dio"))
    s.add_argument("--swa-full", action="store_true",
                   help="full-size KV cache for sliding-window layers (default off, like llama-bench)")


def settings_from_args(args: argparse.Namespace):
    from slmbench.measure import TestPlan
    from slmbench.schema import Settings

    type_k = (args.cache_type or args.cache_type_k).lower()
    type_v = (args.cache_type or args.cache_type_v).lower()
    if args.warmup < 0:
        raise SlmbenchError("--warmup must be >= 0")
    settings = Settings(
        n_threads=args.threads or 0, n_threads_batch=args.threads_batch or args.threads or 0,
        n_batch=args.batch_size, n_ubatch=args.ubatch_size, n_ctx=args.n_ctx,
        n_gpu_layers=args.n_gpu_layers, flash_attn=args.flash_attn, type_k=type_k,
        type_v=type_v, load_mode=args.load_mode, swa_full=args.swa_full, prompt=args.prompt,
        seed=args.seed, repetitions=args.repetitions, warmup=args.warmup)
    plan = TestPlan(n_prompt=[x for x in args.n_prompt if x > 0],
                    n_gen=[x for x in args.n_gen if x > 0], n_depth=args.n_depth,
                    ttft=not args.no_ttft)
    return settings, plan


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE.gguf", help="GGUF model files")
    add_settings_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print JSON records instead of tables")
    o.add_argument("--verbose", action="store_true", help="also print llama.cpp's log")
    o.add_argument("--record-out", help=argparse.SUPPRESS)  # used for one-file worker processes


def _measure_one(path: str, args: argparse.Namespace):
    from slmbench.llama_backend import set_log_echo
    from slmbench.measure import measure_model

    set_log_echo(args.verbose)
    settings, plan = settings_from_args(args)

    def progress(msg: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r\033[K{os.path.basename(path)}: {msg}")
            sys.stderr.flush()

    try:
        return measure_model(path, settings, plan, progress=progress)
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")


def _measure_in_worker(path: str, argv_rest: list[str]):
    """Run `slmbench bench FILE --record-out TMP` in a fresh process; returns a Record."""
    from slmbench.schema import Record, from_dict
    from slmbench.suite import file_quant

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "record.json")
        cmd = [sys.executable, "-m", "slmbench", "bench", path, "--record-out", out, *argv_rest]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0 or not os.path.exists(out):
            tail = (proc.stderr or "").strip().splitlines()
            reason = tail[-1] if tail else f"worker exited with code {proc.returncode}"
            if proc.returncode < 0:
                import signal

                reason = f"worker killed by {signal.Signals(-proc.returncode).name}"
            return Record(record_id="", run_id=None, status="failed", reason=reason,
                          model_id=model_id_from_file(path, file_quant(path)))
        with open(out, encoding="utf-8") as fh:
            return from_dict(Record, json.load(fh))


def run(args: argparse.Namespace) -> int:
    from slmbench.display import format_record
    from slmbench.schema import to_dict

    settings_from_args(args)  # validate flags before any work
    if args.record_out:
        rec = _measure_one(args.files[0], args)
        with open(args.record_out, "w", encoding="utf-8") as fh:
            json.dump(to_dict(rec), fh)
        return 0
    records = []
    rest = _passthrough_argv(args)
    for path in args.files:
        rec = _measure_one(path, args) if len(args.files) == 1 else _measure_in_worker(path, rest)
        records.append(rec)
        if not args.json:
            print(format_record(rec))
            print()
    if args.json:
        json.dump([to_dict(r) for r in records], sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 0 if all(r.status == "ok" for r in records) else 1


def _passthrough_argv(args: argparse.Namespace) -> list[str]:
    """Re-create the option flags for a worker process from parsed args."""
    out = ["-p", ",".join(map(str, args.n_prompt)), "-n", ",".join(map(str, args.n_gen)),
           "-d", ",".join(map(str, args.n_depth)), "-r", str(args.repetitions),
           "--warmup", str(args.warmup), "--prompt", args.prompt, "--seed", str(args.seed),
           "-b", str(args.batch_size), "-ub", str(args.ubatch_size), "--n-ctx", str(args.n_ctx),
           "-ngl", str(args.n_gpu_layers), "-fa", args.flash_attn,
           "-ctk", args.cache_type or args.cache_type_k, "-ctv", args.cache_type or args.cache_type_v,
           "--load-mode", args.load_mode]
    if args.threads:
        out += ["-t", str(args.threads)]
    if args.threads_batch:
        out += ["--threads-batch", str(args.threads_batch)]
    if args.no_ttft:
        out.append("--no-ttft")
    if args.swa_full:
        out.append("--swa-full")
    return out
