"""TekTree's benchmarks: ``python -m bench NAME [--quick]`` (see BENCH.md)."""
