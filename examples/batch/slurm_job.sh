#!/bin/bash
#SBATCH --job-name=dragonx-hello
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --time=00:10:00
#SBATCH --output=dragonx-hello-%j.out
# slurm_job.sh - a dragonx run on every node of a Slurm job.
#
#   sbatch examples/batch/slurm_job.sh               # from the repository root, after building
#   sbatch --nodes=8 examples/batch/slurm_job.sh     # more nodes
#   sbatch examples/batch/slurm_job.sh --no-channel  # arguments go to the head program
#
# `dragonx run` finds the job (SLURM_JOB_ID, srun on PATH), starts one dragonx-runtime on
# each of its nodes with one `srun --overlap` step, and runs the head program on the first
# node; here examples/05_multinode/multinode_hello, which starts a process on every other node.
#
# DRAGONX_BUILD: the build directory holding dragonx and examples/ (default: ./build of the
# directory sbatch was called from). The nodes must see it at the same path (a shared file
# system), as they must see your own programs.
set -euo pipefail
build=${DRAGONX_BUILD:-${SLURM_SUBMIT_DIR:-$PWD}/build}
echo "job $SLURM_JOB_ID on $(hostname): nodes $SLURM_JOB_NODELIST"
exec "$build/dragonx" run "$build/examples/multinode_hello" "$@"
