#!/usr/bin/env bash
# Run every benchmark; tables go to stdout and to benchmarks/out/*.md, pictures to docs/img/.
#
#     bash benchmarks/run_all.sh            # all of it (about 7 minutes on 2 cores)
#     bash benchmarks/run_all.sh --no-peers # without deep-river
#
# Needs: the package built in place (python setup.py build_ext --inplace) and
# pip install -r benchmarks/requirements.txt. For deep-river: bash benchmarks/setup_peers.sh
# (absent venv: the deep-river rows are skipped with a message).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="$here/out"
mkdir -p "$out"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONWARNINGS="ignore::DeprecationWarning"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python="${PYTHON:-python}"

peers=()
if [[ "${1:-}" == "--no-peers" ]]; then
    peers=(--no-peers)
fi

run() {
    local name="$1"; shift
    echo "== $name" >&2
    "$python" "$here/$name.py" "$@" | tee "$out/$name.md"
    echo
}

run bench_accuracy "${peers[@]}" --json "$out/bench_accuracy.json"
run bench_regression
run bench_speed "${peers[@]}"
run bench_kernel
run bench_decode
run bench_stream
echo "tables in ${out#$root/}/, pictures in docs/img/" >&2
