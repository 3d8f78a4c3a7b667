"""The device simulator (`python -m bench.sim`) and the benchmarks; none of it is part of the test suite."""
