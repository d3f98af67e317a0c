// Which file systems can hold an archive's promises: one writer (flock on ARCHIVE.lock, which
// the kernel drops when the writer dies) and SWMR reads during a sweep and after a kill (HDF5's
// SWMR needs POSIX write ordering: a reader sees writes in the order they were made). Network and
// parallel file systems give some of this only with the right mount options, and FUSE file
// systems give what their daemon implements. `sweep --plan` warns by the statfs magic number
// (docs/formats.md, "Archives on shared file systems").
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ms::archive {

struct SharedFs {
  std::string kind;    // "NFS", "Lustre", "GPFS (IBM Storage Scale)", ...
  std::string caveat;  // what it breaks and what to do instead (one sentence or two)
};

// The kind of a statfs f_type magic number when the archive cannot rely on it; nullopt for
// local file systems (ext4, xfs, btrfs, tmpfs, overlay, ...) and for unknown magics.
std::optional<SharedFs> classify_fs_magic(std::uint64_t magic);

// statfs f_type of the folder that holds (or will hold) `path`: its nearest existing ancestor.
// nullopt when statfs fails.
std::optional<std::uint64_t> fs_magic_of(const std::string& path);

// One warning line ("" when the output's file system is local or unknown) for `sweep --plan`.
std::string shared_fs_warning(const std::string& archive_path);

}  // namespace ms::archive
