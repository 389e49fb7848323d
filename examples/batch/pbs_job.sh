#!/bin/bash
#PBS -N dragonx-hello
#PBS -l select=3:ncpus=1:mpiprocs=1
#PBS -l walltime=00:10:00
#PBS -j oe
# pbs_job.sh - a dragonx run on every node of a PBS job.
#
#   qsub examples/batch/pbs_job.sh                          # from the repository root
#   qsub -l select=8:ncpus=1:mpiprocs=1 examples/batch/pbs_job.sh
#   qsub -v DRAGONX_HEAD_ARGS=--no-channel examples/batch/pbs_job.sh
#
# `dragonx run` finds the job (PBS_JOBID, PBS_NODEFILE), starts one dragonx-runtime on each of
# its hosts with one launch command (PALS mpiexec by default; set DRAGONX_PBS_LAUNCH for
# another, see launcher/src/pbs_wlm.cpp), and runs the head program on the first host; here
# examples/05_multinode/multinode_hello, which starts a process on every other node.
#
# DRAGONX_BUILD: the build directory holding dragonx and examples/ (default: ./build of the
# directory qsub was called from). The hosts must see it at the same path (a shared file
# system). DRAGONX_HEAD_ARGS: arguments for the head program (qsub passes none to a script).
set -euo pipefail
cd "$PBS_O_WORKDIR"  # PBS starts the job in $HOME
build=${DRAGONX_BUILD:-$PBS_O_WORKDIR/build}
echo "job $PBS_JOBID on $(hostname): $(sort -u "$PBS_NODEFILE" | wc -l) host(s)"
exec "$build/dragonx" run "$build/examples/multinode_hello" ${DRAGONX_HEAD_ARGS:-} "$@"
