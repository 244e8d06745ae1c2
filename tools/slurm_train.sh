#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [GRES=gpu:8] \
#     [SRUN_ARGS=...] [MASTER_PORT=29500] \
#     tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# One Slurm task per GPU (GPUS tasks in all, GPUS_PER_NODE per node), each
# running tools/train.py --launcher slurm: ranks, world size and master
# address come from Slurm (SLURM_PROCID, SLURM_NTASKS, the first node of
# SLURM_NODELIST); MASTER_PORT (default 29500) picks the port. On nodes
# without GPUs set GRES= (empty) and GPUS / GPUS_PER_NODE to the number of
# processes: DDP then runs on CPU with the gloo backend.
# Python: $PYTHON, else the project's .venv, else python3 (python_env.sh).
set -e
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:$GPUS_PER_NODE}
SRUN_ARGS=${SRUN_ARGS:-""}
DIR=$(dirname "$0")
# shellcheck source=tools/python_env.sh
source "$DIR/python_env.sh"

# SRUN_ARGS is split into words on purpose (several srun options)
# shellcheck disable=SC2086
srun --partition="$PARTITION" \
    --job-name="$JOB_NAME" \
    ${GRES:+--gres="$GRES"} \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$DIR/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "${@:5}"
