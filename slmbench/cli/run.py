"""`slmbench run`: a suite of models x quantizations x settings, one worker process per config."""

from __future__ import annotations

import argparse
import json
import os
import sys

from slmbench.cli.bench import int_list, positive_int
from slmbench.errors import SlmbenchError

HELP = "run a benchmark suite: models x quantizations x settings"
DESCRIPTION = """\
Run a benchmark suite: every model x quantization x setting of a suite file is one config,
measured in its own worker process (one model load serves all prompt/generation lengths).
Results go to RESULTS/<run-id>/results.jsonl, one line per config, written the moment the
config is done; env.json describes the machine and manifest.json the run.

A crash (segfault, out-of-memory kill), a hang past --timeout or a failed download is recorded
as a failed config and the sweep goes on. Configs predicted not to fit in the available RAM are
skipped with the reason. Ctrl-C stops cleanly; --resume RUN_ID continues a stopped or killed run
and measures only what is missing.

SUITE is a YAML file or the name of a shipped suite: quick (default; SmolLM2-135M Q8_0 and
Q4_K_M, short prompts), survey (the SLM survey's protocol: prompt 50 / generate 50, 4-bit models
of every family, plus a quantization study), demo (synthetic models, offline). Every suite key
can be overridden on the command line; lists are comma-separated (see docs/runner.md).

Quality: a suite's `quality:` key (or --quality) adds one config per model file, after the
timing: perplexity and bits per byte on a text (llama-perplexity's method), and KL divergence
against a reference quant of the same model, e.g. `quality: {reference: Q8_0, chunks: 20}`.

examples:
  slmbench run                                        # suites/quick.yaml
  slmbench run survey --cooldown 10
  slmbench run --models smollm2-135m,qwen2.5-0.5b --quants Q8_0,Q4_K_M -p 64,256 -n 32
  slmbench run my.yaml -t 1,2,4 --cache-type f16,q8_0 -r 10
  slmbench run --models ./model.gguf -p 512 -n 128    # a local GGUF file
  slmbench run --resume run-20261122-153012-4242      # continue a stopped run
  slmbench run quick --quality                        # + perplexity of every model file
  slmbench run quick --dry-run                        # list the configs, measure nothing
  slmbench run quick --host pi@raspberrypi            # run it on another device over ssh
  slmbench run my.yaml --host phone --port 8022 --push-files   # copy local .gguf files too
"""

def str_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", nargs="?", metavar="SUITE",
                   help="suite YAML file or shipped suite name (default: quick)")
    m = p.add_argument_group("what to measure (override the suite)")
    m.add_argument("--models", type=str_list, metavar="ID[:QUANT],PATH.gguf,...",
                   help="catalog ids (optionally id:QUANT) or local GGUF files")
    m.add_argument("--quants", type=str_list, metavar="Q[,Q...]",
                   help="quantizations, e.g. Q8_0,Q4_K_M")
    m.add_argument("-p", "--n-prompt", type=int_list, metavar="N[,N...]", help="prompt lengths")
    m.add_argument("-n", "--n-gen", type=int_list, metavar="M[,M...]", help="generation lengths")
    m.add_argument("-d", "--n-depth", type=int_list, metavar="D[,D...]",
                   help="context depths (tokens already in the KV cache)")
    m.add_argument("--no-ttft", action="store_true", help="skip the time-to-first-token tests")
    q = m.add_mutually_exclusive_group()
    q.add_argument("--quality", action="store_true", default=None,
                   help="also score every model file's perplexity / bits per byte (the "
                        "suite's `quality:` settings, or the defaults: bundled text, n_ctx 512)")
    q.add_argument("--no-quality", dest="quality", action="store_false",
                   help="skip the suite's quality tests")
    m.add_argument("-r", "--repetitions", type=positive_int, help="timed repetitions per test")
    m.add_argument("--warmup", type=int, help="untimed warm-up runs per test")
    m.add_argument("--prompt", choices=("random", "text"), help="prompt tokens: random or text")
    m.add_argument("--seed", type=int, help="seed of the random prompt tokens")
    s = p.add_argument_group("llama.cpp settings (lists are swept)")
    s.add_argument("-t", "--threads", type=int_list, metavar="T[,T...]",
                   help="threads (0 = physical cores)")
    s.add_argument("--threads-batch", type=int, help="threads for prompt processing")
    s.add_argument("-ngl", "--n-gpu-layers", type=int_list, metavar="L[,L...]",
                   help="layers offloaded to the GPU")
    s.add_argument("--cache-type", type=str_list, metavar="TYPE[,TYPE...]",
                   help="KV cache types, each TYPE (K and V) or K/V, e.g. f16,q8_0")
    s.add_argument("-ctk", "--cache-type-k", type=str_list, metavar="TYPE[,TYPE...]")
    s.add_argument("-ctv", "--cache-type-v", type=str_list, metavar="TYPE[,TYPE...]")
    s.add_argument("-fa", "--flash-attn", type=str_list, metavar="auto|on|off[,...]")
    s.add_argument("--n-ctx", type=int, help="context size (0 = the longest test)")
    s.add_argument("-b", "--batch-size", type=positive_int, help="logical batch size")
    s.add_argument("-ub", "--ubatch-size", type=positive_int, help="physical batch size")
    s.add_argument("--load-mode", choices=("auto", "none", "mmap", "mlock", "mmap+mlock", "dio"))
    r = p.add_argument_group("the sweep")
    r.add_argument("--cooldown", type=float, metavar="S", help="seconds of rest between tests")
    r.add_argument("--max-temp", type=float, metavar="C",
                   help="wait before each test until the CPU is cooler than C degrees")
    r.add_argument("--timeout", type=float, metavar="S",
                   help="seconds a config may take before its worker is killed (default 3600)")
    r.add_argument("--results", default="results", metavar="DIR",
                   help="results directory (default ./results)")
    r.add_argument("--resume", metavar="RUN_ID",
                   help="continue RUN_ID: measure only the configs it does not have yet")
    r.add_argument("--run-id", metavar="RUN_ID",
                   help="name of a new run (default run-<time>-<pid>)")
    r.add_argument("--offline", action="store_true",
                   help="never download: use models already in the cache")
    r.add_argument("--synth-dir", metavar="DIR",
                   help="cache of synthetic models (default ~/.cache/slmbench/synthetic)")
    r.add_argument("--dry-run", action="store_true", help="list the configs, measure nothing")
    r.add_argument("--verbose", action="store_true", help="show the workers' stderr")
    r.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    h = p.add_argument_group("remote (run the suite on another device over ssh)")
    h.add_argument("--host", metavar="[USER@]HOST", help="run on HOST over ssh, copy results back")
    h.add_argument("--port", type=int, help="ssh port (Termux: 8022)")
    h.add_argument("--remote-slmbench", default="slmbench", metavar="CMD",
                   help="slmbench command on the remote host (default slmbench)")
    h.add_argument("--push-files", action="store_true",
                   help="copy the suite's local files (models, quality corpus and reference) "
                        "to the host first, skipping those already there; without it, local "
                        "paths must exist on the host")


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Suite keys given on the command line (None = not given)."""
    o = {
        "models": args.models, "quants": args.quants, "n_prompt": args.n_prompt,
        "n_gen": args.n_gen, "n_depth": args.n_depth, "threads": args.threads,
        "threads_batch": args.threads_batch, "n_gpu_layers": args.n_gpu_layers,
        "cache_type": args.cache_type, "type_k": args.cache_type_k, "type_v": args.cache_type_v,
        "flash_attn": args.flash_attn, "n_ctx": args.n_ctx, "n_batch": args.batch_size,
        "n_ubatch": args.ubatch_size, "repetitions": args.repetitions, "warmup": args.warmup,
        "prompt": args.prompt, "seed": args.seed, "load_mode": args.load_mode,
        "cooldown_s": args.cooldown, "max_temp_c": args.max_temp, "timeout_s": args.timeout,
        "ttft": False if args.no_ttft else None,
        "quality": getattr(args, "quality", None),
    }
    return {k: v for k, v in o.items() if v is not None}


def override_argv(overrides: dict) -> list[str]:
    """The flags that reproduce ``overrides`` (for a remote run)."""
    from slmbench.suite import FLAGS

    out: list[str] = []
    for key, value in overrides.items():
        if key == "ttft":
            out.append(FLAGS[key])
            continue
        if key == "quality":
            out.append("--quality" if value else "--no-quality")
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        out += [FLAGS[key], text]
    return out


def run(args: argparse.Namespace) -> int:
    from slmbench.suite import load_suite

    overrides = overrides_from_args(args)
    if args.host:
        return _run_remote(args, overrides)
    if args.resume and args.run_id and args.resume != args.run_id:
        raise SlmbenchError("give either --resume RUN_ID or --run-id RUN_ID, not both")
    suite = None  # --resume alone: the suite recorded in the run's manifest
    if args.suite or overrides or not args.resume:
        suite = load_suite(args.suite, overrides)
    if args.dry_run:
        return _dry_run(suite, args)

    from slmbench.runner import Runner, summary_rows, summary_table

    runner = Runner(suite, results_dir=args.results, run_id=args.resume or args.run_id,
                    resume=bool(args.resume), offline=True if args.offline else None,
                    synth_dir=args.synth_dir, argv=sys.argv, verbose=args.verbose)
    result = runner.run()
    if args.json:
        json.dump({"run_id": result.run_id, "run_dir": str(result.run_dir),
                   "status": result.status, "counts": result.counts,
                   "configs": summary_rows(result)}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(summary_table(result))
        c = result.counts
        print(f"\n{c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped; "
              f"results in {result.run_dir}/results.jsonl")
    return result.exit_code


def _dry_run(suite, args: argparse.Namespace) -> int:
    from slmbench.measure import test_name
    from slmbench.runner import Runner
    from slmbench.suite import expand

    if suite is None:  # --resume without a suite: read it from the manifest
        configs = Runner(None, results_dir=args.results, run_id=args.resume, resume=True).configs
    else:
        configs = expand(suite)
    bench = [c for c in configs if c.kind == "bench"]
    tests = [test_name(*t) for t in bench[0].plan.tests()] if bench else []
    if args.json:
        json.dump([{"index": c.index, "record_id": c.record_id, "label": c.label,
                    "model": c.model.key, "kind": c.kind,
                    "tests": tests if c.kind == "bench" else [f"quality@{c.settings.n_ctx}"]}
                   for c in configs], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for c in configs:
        print(f"{c.index:3d}  {c.record_id}  {c.label}")
    if bench:
        print(f"{len(bench)} timing configs; each runs: {', '.join(tests)}")
    if len(bench) < len(configs):
        print(f"{len(configs) - len(bench)} quality configs (perplexity, bits per byte; KL "
              "where a reference is set), after the timing")
    return 0


def _run_remote(args: argparse.Namespace, overrides: dict) -> int:
    from slmbench.remote import run_remote, ssh_options_from_env
    from slmbench.results import new_run_id
    from slmbench.suite import resolve_suite_path

    run_id = args.resume or args.run_id or new_run_id()
    offline = ["--offline"] if args.offline else []
    if not args.push_files:
        local = run_remote(args.host, str(resolve_suite_path(args.suite)),
                           override_argv(overrides) + offline, args.results, run_id,
                           ssh_opts=ssh_options_from_env(), port=args.port,
                           remote_slmbench=args.remote_slmbench)
        print(f"results in {local}")
        return 0
    import tempfile

    from slmbench.remote import pushed_suite
    from slmbench.suite import load_suite

    # the suite with its overrides applied, its local files pointing at the pushed copies
    suite = load_suite(args.suite, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        suite_path = os.path.join(tmp, "suite.yaml")
        push = pushed_suite(suite, suite_path)
        local = run_remote(args.host, suite_path, offline, args.results, run_id,
                           ssh_opts=ssh_options_from_env(), port=args.port,
                           remote_slmbench=args.remote_slmbench, push=push)
    print(f"results in {local}")
    return 0
