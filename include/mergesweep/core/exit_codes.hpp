// The process exit statuses of every mergesweep command: the one table (docs/errors.md has the
// same table for users; keep the two in step).
#pragma once

namespace ms {

inline constexpr int kExitOk = 0;       // success
inline constexpr int kExitError = 1;    // bad input, bad parameters, a failed check or an I/O error
inline constexpr int kExitUsage = 2;    // bad command line (unknown verb or option, missing argument)
// `sweep` stopped early on SIGTERM/SIGINT/SIGUSR2: the archive is consistent and the same command
// resumes it. 75 is sysexits.h's EX_TEMPFAIL; slurm/sweep.sbatch requeues the job on it.
inline constexpr int kExitDrained = 75;

}  // namespace ms
