# Sourced by dist_train.sh, dist_test.sh and slurm_train.sh: the Python that
# runs msdet. $PYTHON if set, else the project's environment (.venv beside
# tools/, as tools/install.sh makes it) when present, else python3 / python
# on PATH. The checkout goes first on PYTHONPATH, so its msdet is the one
# imported.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=$(command -v python3 || command -v python)
    fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
