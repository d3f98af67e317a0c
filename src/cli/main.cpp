// mergesweep: systematic model-merging studies. main() only dispatches (verbs: dispatch.cpp).
#include "mergesweep/cli/verbs.hpp"

int main(int argc, char** argv) { return ms::cli::dispatch(argc, argv); }
