"""mgold UDFs: pure Numba kernels on numpy buffers, and their Arrow / DuckDB wrappers."""
