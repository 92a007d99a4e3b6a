#!/usr/bin/env bash
# Regenerate the llama-bench fixtures of this directory with a real llama-bench binary.
#   LLAMA_BENCH=/opt/llama-tools-build/bin/llama-bench PYTHON=/opt/slmvenv/bin/python ./make_fixtures.sh
# The model is a random-weight synthetic GGUF (slmbench.synth): nothing is downloaded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LLAMA_BENCH=${LLAMA_BENCH:?set LLAMA_BENCH to the llama-bench binary}
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$PYTHON" -c 'from slmbench.synth import SynthSpec, synthesize
synthesize("tiny.gguf", SynthSpec(n_vocab=4096), ["Q8_0", "Q4_K_M"])'
for fmt in json jsonl csv md; do
  "$LLAMA_BENCH" -m tiny-Q8_0.gguf,tiny-Q4_K_M.gguf -p 32,64 -n 16 -d 0,32 -t 2 -r 3 \
    -o "$fmt" > "$here/tiny.$fmt" 2> "$work/llama-bench-$fmt.log"
done
# pg.jsonl: a -pg test (prompt then generation in one sample) next to pp and tg
"$LLAMA_BENCH" -m tiny-Q8_0.gguf -p 16 -n 4 -pg 16,8 -r 2 -t 2 -o jsonl > "$here/pg.jsonl" \
  2> "$work/llama-bench-pg.log"
# phone-edited.json: tiny.json edited to look like an Android phone run (the timings stay x86)
"$PYTHON" - "$here/tiny.json" "$here/phone-edited.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
for r in rows:
    r["cpu_info"] = "ARM Cortex-A78"
    r["gpu_info"] = ""
    r["model_filename"] = "/data/local/tmp/" + r["model_filename"]
with open(sys.argv[2], "w") as fh:
    json.dump(rows, fh, indent=2)
    fh.write("\n")
PY
"$LLAMA_BENCH" --version 2>&1 | grep -i commit
