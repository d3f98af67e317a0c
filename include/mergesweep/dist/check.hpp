// Every MPI call is checked: MS_MPI_CHECK(MPI_Foo(...)) throws ms::Error naming the call, the
// source file and line, and MPI's own message. (MPI_ERRORS_RETURN is set on the world, so
// errors return here instead of aborting; communicators split from it inherit that.)
#pragma once

#include <mpi.h>

namespace ms::dist::detail {

// Throws when rc is not MPI_SUCCESS.
void mpi_check(int rc, const char* call, const char* file, int line);
// "dir/comm_mpi.cpp" -> "comm_mpi.cpp": messages name the source file, not this machine's path.
const char* source_name(const char* file);

}  // namespace ms::dist::detail

#define MS_MPI_CHECK(call) ::ms::dist::detail::mpi_check((call), #call, __FILE__, __LINE__)
