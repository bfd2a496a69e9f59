"""Throwaway local servers and sample data, for ``make demo``, the tests and the benchmarks."""
