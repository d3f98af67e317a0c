// Drain on signal. SIGUSR2 (SLURM's warning before the time limit, sent with
// --signal=B:USR2@T): stop handing out work, finish what is in flight, flush, exit with
// kExitDrained. SIGTERM / SIGINT (the time limit itself, mpirun's kill, Ctrl-C): stop too, and
// drop the work in flight at its next checkpoint. A second signal of either kind escalates to
// dropping. The handlers only set flags; the sweep loops poll them.
#pragma once

namespace ms::dist {

// Exit status of a sweep that stopped early on a signal: the archive is consistent and the same
// command resumes it (EX_TEMPFAIL; slurm/sweep.sbatch requeues on it).
inline constexpr int kExitDrained = 75;

void install_drain_handlers();
bool stop_requested();   // any of the signals arrived
bool drop_requested();   // in-flight work should be abandoned
int last_signal();       // 0 when none
// For tests and for the coordinator relaying a stop to workers.
void request_stop(bool drop);

}  // namespace ms::dist
