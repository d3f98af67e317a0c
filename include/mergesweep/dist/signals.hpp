// Drain on signal. SIGUSR2 (SLURM's warning before the time limit, sent with
// --signal=B:USR2@T): stop handing out work, finish what is in flight, flush, exit with
// kExitDrained. SIGTERM / SIGINT (the time limit itself, mpirun's kill, Ctrl-C): stop too, and
// drop the work in flight at its next checkpoint. A second signal of either kind escalates to
// dropping. The handlers only set flags; the sweep loops poll them.
// Open MPI's mpirun forwards SIGUSR2 to every rank, but turns SIGINT and SIGTERM (Ctrl-C, kill)
// into SIGTERM for every rank and then exits 1 itself: the ranks stop cleanly (the archive is
// consistent, the rerun resumes) but the job's status is mpirun's. docs/errors.md has the table.
#pragma once

#include <string>

#include "mergesweep/core/exit_codes.hpp"

namespace ms::dist {

using ms::kExitDrained;  // the table of exit statuses is core/exit_codes.hpp

void install_drain_handlers();
bool stop_requested();   // any of the signals arrived
bool drop_requested();   // in-flight work should be abandoned
int last_signal();       // 0 when none
// "stopped by SIGUSR2 (a drain: ...)": which signal, and whether in-flight work was dropped.
std::string describe_stop();
// For tests and for the coordinator relaying a stop to workers.
void request_stop(bool drop);

}  // namespace ms::dist
