// Progress, for the silence detector (schedule.peer_timeout): a per-process counter ticked by
// every completed collective and by long loops between blocks of work. A group leader reports it
// to the coordinator (work_channel.hpp); a group whose count stops moving for peer_timeout
// seconds is hung, and the coordinator ends the job with kExitDrained (signals.hpp).
#pragma once

#include <cstdint>

namespace ms::dist {

void note_progress();  // lock-free
std::uint64_t progress_count();

// Called by long loops between blocks of work on every rank (scoring blocks, probe fits): notes
// progress and returns drop_requested() (signals.hpp). No communication: a rank that leaves its
// loop early still enters the group's next collective, and the group's agreement after it (the
// worker's drop check) drops the config on every rank. Cheap: two atomic operations.
bool poll_drop_between_blocks();

}  // namespace ms::dist
