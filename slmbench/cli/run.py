"""`slmbench run`: a suite of models x quantizations x settings, one worker process per config."""

from __future__ import annotations

import argparse
import json
import os
import sys

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
Sustained performance: a suite's `sustained:` key adds one config per model file, last: its
workload back to back for a duration, window by window, e.g. `sustained: {duration: 10m,
workload: chat:512/128}` (see `slmbench sustain --help`).
Profiles: a suite's `profile:` key (or --profile) adds one config per model file, last: where
the time of a prefill and of decoding goes, operator class by class, e.g. `profile: {n_prompt:
256, n_gen: 32}` (see `slmbench profile --help`).

examples:
  slmbench run                                        # suites/quick.yaml
  slmbench run survey --cooldown 10
  slmbench run --models smollm2-135m,qwen2.5-0.5b --quants Q8_0,Q4_K_M -p 64,256 -n 32
  slmbench run my.yaml -t 1,2,4 --cache-type f16,q8_0 -r 10
  slmbench run --models ./model.gguf -p 512 -n 128    # a local GGUF file
  slmbench run --resume run-20261122-153012-4242      # continue a stopped run
  slmbench run quick --quality                        # + perplexity of every model file
  slmbench run quick --dry-run                        # list the configs, measure nothing
  slmbench run quick --workload chat --targets targets.yaml   # exit 1 when a target is missed
  slmbench run quick --host pi@raspberrypi            # run it on another device over ssh
  slmbench run my.yaml --host phone --port 8022 --push-files   # copy local .gguf files too
  slmbench run quick --hosts inventory.yml --limit jetsons      # every host of a fleet at once
  slmbench run --resume fleet-20261122-153012-4242              # continue a stopped fleet run

Workloads and targets (docs/recommend.md): --workload chat (or autocomplete, summarize, rag,
P/G) adds the tests of that use's end-to-end latency (ttft512 and tg128@d512 for chat);
--targets FILE (or the suite key targets:) judges every config after the run, e.g.
`ttft_ms: {chat: 1000}`, `peak_rss_mib: 2048`, `kl_mean: 0.02`, and adds the workloads it
names. Exit code 1 when a config misses a target (uncertain verdicts are shown, not failed),
2 on a bad targets file: a CI gate for "this model still fits this device".

Fleet runs (--hosts, docs/fleet.md): the inventory is an Ansible inventory (YAML or INI; host
variables ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file,
ansible_ssh_common_args, slmbench_remote or slmbench_venv, slmbench_device). Every host runs the
suite through the --host machinery, concurrently; stderr shows one line per host; results go to
RESULTS/<fleet-id>/, one run per host, with fleet.json. `report`, `analyze` and `compare` take
the fleet directory. Exit code 1 when any host or config failed.
"""

def add_arguments(p: argparse.ArgumentParser) -> None:
    from slmbench import config

    p.add_argument("suite", nargs="?", metavar="SUITE",
                   help="suite YAML file or shipped suite name (default: quick)")
    config.add_arguments(p, "run")
    r = p.add_argument_group("the run")
    r.add_argument("--results", default="results", metavar="DIR",
                   help="results directory (default ./results)")
    r.add_argument("--resume", metavar="RUN_ID",
                   help="continue RUN_ID: measure only the configs it does not have yet")
    r.add_argument("--run-id", metavar="RUN_ID",
                   help="name of a new run (default run-<time>-<pid>)")
    r.add_argument("--offline", action="store_true",
                   help="never download: use models already in the cache")
    r.add_argument("--synth-dir", metavar="DIR",
                   help="cache of synthetic models (default $SLMBENCH_CACHE/synthetic, "
                        "~/.cache/slmbench/synthetic)")
    r.add_argument("--dry-run", action="store_true", help="list the configs, measure nothing")
    r.add_argument("--verbose", action="store_true",
                   help="show the workers' stderr and llama.cpp's log")
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
    f = p.add_argument_group("fleet (run the suite on every host of an Ansible inventory)")
    f.add_argument("--hosts", metavar="INVENTORY",
                   help="Ansible inventory (YAML or INI); results go to RESULTS/<fleet-id>/")
    f.add_argument("--limit", metavar="PATTERN",
                   help="only these hosts or groups (Ansible pattern: jetsons,!jetson-02)")
    f.add_argument("--parallel", type=int, metavar="N",
                   help="at most N hosts at a time (default: all)")


def run(args: argparse.Namespace) -> int:
    from slmbench import api, config

    overrides = config.overrides_from_args(args)
    from slmbench.fleet import is_fleet_dir

    if args.hosts or (args.resume and is_fleet_dir(os.path.join(args.results, args.resume))):
        targets = _local_targets(overrides)
        code, fleet_dir = _run_fleet(args, overrides)
        return _gate(code, args, targets, lambda: [fleet_dir] if fleet_dir else [])
    if args.limit or args.parallel:
        from slmbench.errors import ConfigError

        raise ConfigError("--limit and --parallel go with --hosts INVENTORY")
    if args.host:
        from slmbench.remote import run_suite_remote

        targets = _local_targets(overrides)
        local = run_suite_remote(args.host, args.suite, overrides, results_dir=args.results,
                                 run_id=args.run_id, resume=args.resume, offline=args.offline,
                                 port=args.port, remote_slmbench=args.remote_slmbench,
                                 push_files=args.push_files)
        from slmbench.results import run_exit_code

        print(f"results in {local}")
        return _gate(run_exit_code(local), args, targets, lambda: [local])
    if args.dry_run:
        return _print_plan(api.plan_suite(args.suite, overrides, resume=args.resume,
                                          results_dir=args.results), args.json)
    if args.verbose:
        from slmbench.llama_backend import LOG_ENV

        os.environ[LOG_ENV] = "1"  # the workers copy llama.cpp's log to their stderr
    from slmbench.runner import summary_rows, summary_table

    result = api.run_suite(args.suite, overrides, results_dir=args.results, resume=args.resume,
                           run_id=args.run_id, offline=True if args.offline else None,
                           synth_dir=args.synth_dir, argv=sys.argv, verbose=args.verbose)
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
    if result.status != "finished":
        return result.exit_code
    return _gate(result.exit_code, args, None, lambda: [result.run_dir])


def _local_targets(overrides: dict) -> object:
    """--targets of a remote or fleet run: checked now, judged here when the results are back
    (the file need not exist on the hosts)."""
    from slmbench.verdict import load_targets

    spec = overrides.pop("targets", None)
    return load_targets(spec) if spec else None


def _gate(code: int, args: argparse.Namespace, targets: object, run_dirs) -> int:
    """`run --targets` (or a suite's targets:): print the verdicts; exit 1 when a config
    misses a target (or failed), else the run's own exit code."""
    from slmbench import api

    if code == 130:
        return code
    dirs = [d for d in run_dirs() if d]
    verdict = api.targets_verdict(dirs, targets) if dirs else None
    if verdict is None:
        return code
    from slmbench.verdict import render_text

    failed = verdict.failed_configs
    if not args.json:  # JSON: `slmbench recommend RUN --json` gives the verdicts as data
        print("\n" + render_text(verdict))
    if failed:
        print(f"\ntargets: {len(failed)} config(s) miss a target: "
              + ", ".join(f"{label} on {device}" for device, label in failed),
              file=sys.stderr)
        return max(code, 1)
    return code


def _run_fleet(args: argparse.Namespace, overrides: dict) -> tuple[int, str | None]:
    from slmbench.errors import ConfigError
    from slmbench.fleet import run_fleet, summary_table

    if args.host:
        raise ConfigError("--host does not go with --hosts (a fleet run); the inventory names "
                          "the hosts")
    if args.dry_run:
        from slmbench.display import table
        from slmbench.fleet import plan_fleet

        if not args.hosts:
            raise ConfigError("--dry-run of a fleet run needs --hosts INVENTORY")
        rows = plan_fleet(args.hosts, args.limit)
        if args.json:
            json.dump(rows, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print(table([[r["name"], r["target"], str(r["port"] or 22),
                          r["device_label"] or "(detected)", r["remote_slmbench"]]
                         for r in rows], ["host", "ssh", "port", "device", "slmbench there"]))
        return 0, None
    result = run_fleet(args.suite, overrides, inventory=args.hosts, limit=args.limit,
                       parallel=args.parallel, results_dir=args.results, fleet_id=args.run_id,
                       resume=args.resume, offline=args.offline, push_files=args.push_files,
                       argv=sys.argv)
    if args.json:
        json.dump(result.manifest, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(summary_table(result))
        print(f"\nresults in {result.fleet_dir} (side by side: slmbench report "
              f"{result.fleet_dir} -o report/)")
        if any(h.get("status") != "ok" for h in result.hosts):
            print(f"hosts that failed: fix them, then slmbench run --resume {result.fleet_id} "
                  f"--results {args.results} (hosts that finished are kept)")
    return result.exit_code, str(result.fleet_dir)


def _print_plan(configs: list, as_json: bool) -> int:
    from slmbench.config import test_name

    bench = [c for c in configs if c.kind == "bench"]
    tests = [test_name(*t) for t in bench[0].plan.tests()] if bench else []
    if as_json:
        json.dump([{"index": c.index, "record_id": c.record_id, "label": c.label,
                    "model": c.model.key, "kind": c.kind,
                    "tests": tests if c.kind == "bench" else _other_tests(c)}
                   for c in configs], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for c in configs:
        print(f"{c.index:3d}  {c.record_id}  {c.label}")
    if bench:
        print(f"{len(bench)} timing configs; each runs: {', '.join(tests)}")
    quality = sum(c.kind == "quality" for c in configs)
    if quality:
        print(f"{quality} quality configs (perplexity, bits per byte; KL "
              "where a reference is set), after the timing")
    sustained = [c for c in configs if c.kind == "sustained"]
    if sustained:
        print(f"{len(sustained)} sustained configs, last: {_other_tests(sustained[0])[0]}")
    profiles = [c for c in configs if c.kind == "profile"]
    if profiles:
        print(f"{len(profiles)} profile configs, last: "
              f"{', '.join(_other_tests(profiles[0]))}")
    return 0


def _other_tests(c) -> list[str]:
    """The tests of a quality, sustained or profile config."""
    if c.kind == "profile":
        from slmbench.profile import profile_name

        p = c.profile
        return [profile_name(phase, p["n_prompt"], p["n_gen"], p["n_depth"])
                for phase, n in (("prefill", p["n_prompt"]), ("decode", p["n_gen"])) if n]
    return [_other_test(c)]


def _other_test(c) -> str:
    """The one test of a quality or sustained config."""
    if c.kind == "sustained":
        from slmbench.sustained import spec_from_values

        return spec_from_values(c.sustained).test_name
    return f"quality@{c.settings.n_ctx}"
