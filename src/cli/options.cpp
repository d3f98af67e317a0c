#include "options.hpp"

#include <iostream>

namespace po = boost::program_options;

namespace ms::cli {

bool parse_command_line(int argc, char** argv, const po::options_description& options,
                        std::initializer_list<Positional> positionals, po::variables_map& vm) {
  po::options_description hidden;
  po::positional_options_description pos;
  for (const Positional& p : positionals) {
    hidden.add_options()(p.name, p.value);
    pos.add(p.name, p.count);
  }
  po::options_description all;
  all.add(options).add(hidden);
  po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
  // Help before notify: `--help` alone must not trip a required option.
  if (vm.count("help")) {
    std::cout << options << "\n";
    return false;
  }
  po::notify(vm);
  for (const Positional& p : positionals)
    if (p.missing != nullptr && !vm.count(p.name)) throw po::error(p.missing);
  return true;
}

}  // namespace ms::cli
