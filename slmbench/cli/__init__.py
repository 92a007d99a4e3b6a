"""The `slmbench` command line: one sub-module per sub-command.

Each sub-module defines ``DESCRIPTION`` (the --help text that teaches; its one-line help is
the COMMANDS table's, below), ``add_arguments(parser)`` and ``run(args) -> int``.  Sub-modules
are imported only when their command runs, so `slmbench --help` stays fast and a broken
optional part cannot break the rest.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from slmbench import __version__
from slmbench.errors import SlmbenchError

# command name -> (module under slmbench.cli, one-line help); the order is the order in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "offline end-to-end demo on synthetic models (no download)"),
    "run": ("run", "run a benchmark suite: models x quantizations x settings"),
    "bench": ("bench", "benchmark GGUF files directly (prefill, TTFT, decode, memory)"),
    "quality": ("quality", "perplexity, bits per byte and KL divergence vs a reference quant"),
    "sustain": ("sustain", "sustained performance: how much of its burst speed a device keeps"),
    "profile": ("profile", "where the time goes: operator-level profile of prefill and decode"),
    "probe": ("probe", "measure this device once (~2 min per thread count) for `predict`"),
    "predict": ("predict", "predict decode, prefill and memory of any GGUF before downloading"),
    "analyze": ("analyze", "tables and statistics over one or more runs"),
    "report": ("report", "write a Markdown + self-contained HTML report with figures"),
    "compare": ("compare", "compare two runs with statistics; exit 1 on a regression"),
    "recommend": ("recommend", "which model and quant to ship: targets, verdicts, Pareto front"),
    "history": ("history", "trend of a config across many runs / versions"),
    "import": ("import_", "import llama-bench output as a slmbench run"),
    "push": ("push", "upload runs to a Hugging Face dataset (hf://datasets/ORG/NAME)"),
    "pull": ("pull", "download runs from a Hugging Face dataset"),
    "download": ("download", "download catalog models from the Hugging Face hub"),
    "models": ("models", "list the model catalog (models.yaml)"),
    "inspect": ("inspect", "read a GGUF header: parameters, quant mix, KV bytes per token"),
    "synth": ("synth", "write a random-weight GGUF of any shape, and quantize it"),
    "env": ("env", "show the device profile: CPU, memory, GPU, board, sensors"),
}

MAIN_DESCRIPTION = """\
slmbench measures small language models served by llama.cpp on this device:
prefill latency and throughput, time to first token, per-token decode latency,
load time and a memory breakdown (weights / KV cache / compute / other).

start here:
  slmbench demo                      offline demo on synthetic models (~3 min)
  slmbench run                       the quick suite (downloads SmolLM2-135M)
  slmbench bench model.gguf -p 64,256 -n 32 -r 5
  slmbench <command> --help          every command explains its options
"""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option and pointing at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="slmbench",
        description=MAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"slmbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        # The sub-parser is configured lazily (see main) so an import error in one command
        # does not break `slmbench --help`.
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(f"slmbench.cli.{module_name}")
    parser = OneLineParser(
        prog=f"slmbench {name}",
        description=getattr(module, "DESCRIPTION", help_text),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    if argv[0] == "--version":
        top.parse_args(argv)
    name = argv[0]
    if name not in COMMANDS:
        top.parse_args(argv[:1])  # prints argparse's "invalid choice" message, exits 2
        return 2
    try:
        parser, module = _command_parser(name)
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit as exc:  # --help or a usage error: argparse already printed it
            return int(exc.code or 0)
        return int(module.run(args) or 0)
    except SlmbenchError as exc:
        print(f"slmbench {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"slmbench {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def entry_point() -> None:
    sys.exit(main())
