"""`slmbench push`: share run directories through a Hugging Face dataset repository."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Upload run directories to a dataset repository on the Hugging Face hub, in one commit:
each run goes to runs/<device>/<run-id>/ (results.jsonl, env.json, manifest.json, and its
report/ if it has one; never model files), and the dataset's index.jsonl and card (README.md:
devices, models, runs, schema version, how to read it) are regenerated in the same commit.
The device is env.json's device.label. The dataset is created if missing (--private makes a
new one private; an existing one keeps its visibility). A run already there byte for byte is
skipped; a run whose files changed since (resumed, or a report added) replaces its old copy.

A push is all or nothing: if it fails or is interrupted, the dataset is left as it was. If
someone else pushes at the same time, the push re-reads the dataset and retries.

auth: HF_TOKEN (or `hf auth login`) with write access to ORG
(https://huggingface.co/settings/tokens). HF_ENDPOINT points at another hub.

note: env.json holds the machine's hostname and manifest.json the command line and working
directory; they are uploaded as they are (use --private, or edit them first).

examples:
  export HF_TOKEN=hf_...
  slmbench push results/run-20261122-153012-4242 --to hf://datasets/my-team/slm-results
  slmbench push results/run-* --to hf://datasets/me/jetson-runs --private
  slmbench history hf://datasets/my-team/slm-results --by version    # read it back
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories to upload")
    p.add_argument("--to", required=True, metavar="hf://datasets/ORG/NAME",
                   help="the dataset repository (created if missing)")
    p.add_argument("--private", action="store_true",
                   help="create the dataset private (no effect on an existing one)")
    p.add_argument("-m", "--message", metavar="TEXT",
                   help="commit message (default: 'slmbench push: N runs (...)')")


def run(args: argparse.Namespace) -> int:
    from slmbench.sharing import push

    res = push(args.runs, args.to, private=args.private, message=args.message)
    for path in res.new:
        print(f"new        {res.dataset}/{path}")
    for path in res.updated:
        print(f"updated    {res.dataset}/{path}")
    for path in res.unchanged:
        print(f"unchanged  {res.dataset}/{path}")
    if res.commit:
        print(f"{'created ' + res.dataset + ', ' if res.created else ''}commit "
              f"{res.commit[:10]}: {res.commit_url}")
    else:
        print(f"nothing to push: every run is already in {res.dataset}")
    return 0
