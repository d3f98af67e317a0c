// Version and build provenance, recorded in every archive and printed by --version.
#pragma once

namespace ms {
extern const char* const kVersion;
extern const char* const kGitRevision;
}  // namespace ms
