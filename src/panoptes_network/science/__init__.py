"""Pure science: pixels, headers and tables in, numbers and bytes out. No storage, no network;
a module that runs an external program says so in its name (``solve_field``)."""
