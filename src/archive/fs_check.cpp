// statfs magic numbers from the kernel's include/uapi/linux/magic.h and the file systems' own
// sources (Lustre's LL_SUPER_MAGIC, GPFS's "GPFS", BeeGFS's, PanFS's); docs/formats.md,
// "Archives on shared file systems", says what each kind means for an archive.
#include "mergesweep/archive/fs_check.hpp"

#include <sys/vfs.h>

#include <cstdio>
#include <filesystem>

namespace ms::archive {
namespace {

constexpr const char* kNfs =
    "flock is emulated by NFS byte-range locks (lost with the lock daemon or a client crash) and a reader "
    "on another client sees writes in the order its attribute cache allows, not the order they were made: "
    "SWMR readers can read torn metadata; write the archive to node-local disk and copy it when done";
constexpr const char* kLustre =
    "flock works only when mounted with -o flock (with -o localflock it is not seen by other nodes, without "
    "either it fails); SWMR needs POSIX ordering, which Lustre gives: check `mount | grep lustre` for flock, "
    "or write to node-local disk";
constexpr const char* kGpfs =
    "writes are POSIX-ordered across nodes (SWMR holds), but flock must reach every node for the single-writer "
    "lock: check that `flock ARCHIVE.lock sleep 30` on one node blocks the same command on another, or write "
    "to node-local disk";
constexpr const char* kSmb =
    "SMB/CIFS has no POSIX write ordering for other clients and maps flock to share modes: neither the single "
    "writer nor SWMR holds; write the archive to local disk";
constexpr const char* kFuse =
    "a FUSE file system gives flock and write ordering only as far as its daemon implements them "
    "(sshfs, s3fs and most object-store mounts give neither); write the archive to local disk";
constexpr const char* kOtherNetwork =
    "a network file system whose flock and cross-client write ordering the archive cannot rely on; "
    "write the archive to node-local disk";

}  // namespace

std::optional<SharedFs> classify_fs_magic(std::uint64_t magic) {
  switch (magic) {
    case 0x6969: return SharedFs{"NFS", kNfs};
    case 0x0BD00BD0: return SharedFs{"Lustre", kLustre};
    case 0x47504653: return SharedFs{"GPFS (IBM Storage Scale)", kGpfs};
    case 0xFF534D42: return SharedFs{"CIFS", kSmb};
    case 0xFE534D42: return SharedFs{"SMB2/3", kSmb};
    case 0x517B: return SharedFs{"SMB", kSmb};
    case 0x65735546: return SharedFs{"FUSE", kFuse};
    case 0x00C36400: return SharedFs{"CephFS", kOtherNetwork};
    case 0x19830326: return SharedFs{"BeeGFS", kOtherNetwork};
    case 0xAAD7AAEA: return SharedFs{"PanFS", kOtherNetwork};
    case 0x01021997: return SharedFs{"9P", kOtherNetwork};
    case 0x5346414F: case 0x6B414653: return SharedFs{"AFS", kOtherNetwork};
    case 0x73757245: return SharedFs{"Coda", kOtherNetwork};
    case 0x7461636F: return SharedFs{"OCFS2", kOtherNetwork};
    case 0x01161970: return SharedFs{"GFS2", kOtherNetwork};
    case 0x20030528: return SharedFs{"OrangeFS/PVFS2", kOtherNetwork};
    default: return std::nullopt;
  }
}

std::optional<std::uint64_t> fs_magic_of(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::absolute(path.empty() ? "." : path, ec);
  while (!p.empty() && !fs::exists(p, ec) && p != p.root_path()) p = p.parent_path();
  struct statfs st {};
  if (::statfs(p.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(static_cast<std::uint32_t>(st.f_type));  // f_type is a 32-bit magic
}

std::string shared_fs_warning(const std::string& archive_path) {
  const auto magic = fs_magic_of(archive_path);
  const auto kind = magic ? classify_fs_magic(*magic) : std::nullopt;
  if (!kind) return "";
  char hex[24];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(*magic));
  return "warning: " + archive_path + " is on " + kind->kind + " (statfs magic " + hex + "): " + kind->caveat +
         " (docs/formats.md, \"Archives on shared file systems\")";
}

}  // namespace ms::archive
