// Drain on signal. SIGUSR2 (SLURM's warning before the time limit, sent with
// --signal=B:USR2@T): stop handing out work, finish what is in flight, flush, exit with
// kExitDrained. SIGTERM / SIGINT (the time limit itself, mpirun's kill, Ctrl-C): stop too, and
// drop the work in flight at its next checkpoint. A second signal of either kind escalates to
// dropping. The handlers only set flags; the sweep loops poll them.
//
// Progress, for the silence detector (schedule.peer_timeout): a per-process counter ticked by
// every completed collective and by long loops between blocks of work. A group leader reports
// it to the coordinator; a group whose counter stops moving for peer_timeout seconds is hung.
#pragma once

#include <cstdint>

namespace ms::dist {

// Exit status of a sweep that stopped early on a signal, or that ended because a worker group
// fell silent: the archive is consistent and the same command resumes (EX_TEMPFAIL;
// slurm/sweep.sbatch requeues on it).
inline constexpr int kExitDrained = 75;

void install_drain_handlers();
bool stop_requested();   // any of the signals arrived
bool drop_requested();   // in-flight work should be abandoned
int last_signal();       // 0 when none
// For tests and for the coordinator relaying a stop to workers.
void request_stop(bool drop);

void note_progress();              // lock-free
std::uint64_t progress_count();

// Called by long loops between blocks of work on every rank (scoring blocks, probe fits): notes
// progress and returns drop_requested(). No communication: a rank that leaves its loop early
// still enters the group's next collective, and the group's agreement after it (the worker's
// drop check) drops the config on every rank. Cheap: two atomic operations.
bool poll_drop_between_blocks();

}  // namespace ms::dist
