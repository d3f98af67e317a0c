// ConfigResult <-> bytes (CBOR): how a group leader sends a finished config to rank 0. Doubles
// travel as IEEE binary64, so the archive holds exactly what the worker computed.
#pragma once

#include <cstdint>
#include <vector>

#include "mergesweep/archive/archive.hpp"

namespace ms::sweep {

std::vector<std::uint8_t> encode_result(const archive::ConfigResult& r);
archive::ConfigResult decode_result(const std::vector<std::uint8_t>& bytes);

}  // namespace ms::sweep
