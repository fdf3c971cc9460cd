// Placeholder until the engine lands (issue 4): keeps the package buildable.
#include <pybind11/pybind11.h>
PYBIND11_MODULE(pianoscribe_native, m) { m.attr("__version__") = "0"; }
