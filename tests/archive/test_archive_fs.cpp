// The file-system check behind `sweep --plan`'s warning: each shared kind by its statfs magic
// (no NFS, Lustre or FUSE mount is available here, so the magics stand in), local kinds pass,
// and the real statfs of this test's own folder is read and classified.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_util.hpp"
#include "mergesweep/archive/fs_check.hpp"

namespace ms::archive {
namespace {

TEST(ArchiveFs, SharedKindsAreNamedByTheirMagic) {
  const std::pair<std::uint64_t, const char*> shared[] = {
      {0x6969, "NFS"},     {0x0BD00BD0, "Lustre"}, {0x47504653, "GPFS"},   {0xFF534D42, "CIFS"},
      {0xFE534D42, "SMB"}, {0x517B, "SMB"},        {0x65735546, "FUSE"},  {0x00C36400, "CephFS"},
      {0x19830326, "BeeGFS"}, {0x01021997, "9P"}};
  for (const auto& [magic, kind] : shared) {
    const auto k = classify_fs_magic(magic);
    ASSERT_TRUE(k.has_value()) << std::hex << magic;
    EXPECT_NE(k->kind.find(kind), std::string::npos) << k->kind;
    EXPECT_FALSE(k->caveat.empty()) << kind;
  }
  EXPECT_NE(classify_fs_magic(0x0BD00BD0)->caveat.find("-o flock"), std::string::npos);
  EXPECT_NE(classify_fs_magic(0x6969)->caveat.find("node-local"), std::string::npos);
  // ext2/3/4, xfs, btrfs, tmpfs, overlayfs, zfs: the archive's promises hold.
  for (std::uint64_t local : {0xEF53ull, 0x58465342ull, 0x9123683Eull, 0x01021994ull, 0x794C7630ull, 0x2FC12FC1ull})
    EXPECT_FALSE(classify_fs_magic(local).has_value()) << std::hex << local;
}

TEST(ArchiveFs, TheRealStatfsOfThisFolderIsReadAndClassified) {
  ms::test::TempDir tmp;
  const auto magic = fs_magic_of(tmp / "not-yet/study.h5");  // the nearest existing folder is asked
  ASSERT_TRUE(magic.has_value());
  const std::string w = shared_fs_warning(tmp / "study.h5");
  if (const auto kind = classify_fs_magic(*magic)) {
    EXPECT_NE(w.find("is on " + kind->kind), std::string::npos) << w;
  } else {
    EXPECT_EQ(w, "") << "a local file system (magic " << std::hex << *magic << ") gives no warning";
  }
  EXPECT_EQ(fs_magic_of("/"), fs_magic_of("/"));
}

}  // namespace
}  // namespace ms::archive
