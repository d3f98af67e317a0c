#!/usr/bin/env bash
# The sweep's kill test with more trials than CI runs (CI: 5). Each trial starts a 2-rank sweep on
# a miniature testbed, SIGKILLs a random rank at a random moment, reruns, and checks that every
# config is in the archive exactly once with the values of an uninterrupted run.
# usage: bench/kill_trials.sh [TRIALS=20]   (MS_BUILD: build folder, default build)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
ms_mpi_env
MS_KILL_TRIALS="${1:-20}" "$MS_BUILD/tests/sweep/test_sweep_mpi" --gtest_filter='*KillingARandomRank*'
