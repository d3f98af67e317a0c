// SHA-256 of files and buffers (OpenSSL), lower-case hex. Archives record checkpoint hashes.
#pragma once

#include <cstddef>
#include <string>

namespace ms {

std::string sha256_hex(const void* data, std::size_t nbytes);
// Streams the file; throws ms::Error naming the path.
std::string sha256_file(const std::string& path);

}  // namespace ms
