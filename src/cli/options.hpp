// The one "usage + positionals + --help" block of the verbs' command lines (Boost.Program_options).
#pragma once

#include <boost/program_options.hpp>

#include <initializer_list>

namespace ms::cli {

// A positional argument: `name` in the variables map, `count` values (-1: all the rest), stored
// through `value`; `missing` (when not null) is the usage error raised when it is absent.
struct Positional {
  const char* name;
  int count;
  boost::program_options::value_semantic* value;
  const char* missing;
};

// Parses argv (argv[0] = the verb or command) against the visible `options` plus the positionals.
// On --help prints `options` (usage text and options) to stdout and returns false. Otherwise
// checks required options and absent positionals (throwing boost::program_options::error, which
// main() turns into exit status 2) and returns true.
bool parse_command_line(int argc, char** argv, const boost::program_options::options_description& options,
                        std::initializer_list<Positional> positionals, boost::program_options::variables_map& vm);

}  // namespace ms::cli
