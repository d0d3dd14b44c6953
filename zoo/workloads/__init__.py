"""Workload suites shared by a family's reproductions (one module per family)."""
