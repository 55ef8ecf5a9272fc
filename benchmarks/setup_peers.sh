#!/usr/bin/env bash
# Create benchmarks/.venv-peers: a separate environment for the deep-river peer.
#
# deep-river 0.3.4 declares river<0.26 and torch<2.6; it runs with torch 2.13, which is the
# only torch this machine installs, so the package itself is installed with --no-deps and its
# dependencies are listed here explicitly. The main environment (river 0.26) is left alone.
#
#     bash benchmarks/setup_peers.sh          # create or update the venv
#     bash benchmarks/setup_peers.sh --force  # recreate it
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$venv"
fi
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

"${pip[@]}" install --quiet --upgrade pip
# torch first, from the same release the main benchmarks use (a CPU build on this machine).
"${pip[@]}" install --quiet "torch==2.13.0"
# deep-river's declared dependencies, minus its torch pin; river 0.25 satisfies river<0.26.
# pytest is undeclared but imported when deep_river is (deep_river/utils/estimator_checks.py).
"${pip[@]}" install --quiet "river==0.25.0" "numpy>=2.3.4,<3" "pandas>=2.2,<3" \
    "scikit-learn>=1.5.1,<2" "sortedcontainers>=2.4.0" "tqdm>=4.66.5,<5" pytest
"${pip[@]}" install --quiet --no-deps "deep-river==0.3.4"

"$venv/bin/python" - <<'PY'
import deep_river, river, torch
print(f"peers venv ready: deep-river {deep_river.__version__}, river {river.__version__}, "
      f"torch {torch.__version__}")
PY
