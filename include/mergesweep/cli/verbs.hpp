// Entry points of the `mergesweep <verb>` subcommands; each parses its own options.
#pragma once

namespace ms::cli {

// argv[0] is the verb name. Each returns the process exit status or throws ms::Error.
int run_inspect(int argc, char** argv);
int run_synth(int argc, char** argv);
int run_merge(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_testbed(int argc, char** argv);
int run_sweep(int argc, char** argv);
int run_archive(int argc, char** argv);
int run_report(int argc, char** argv);

}  // namespace ms::cli
