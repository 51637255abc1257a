"""The seeded cluster simulator: N Raft cores, a simulated network and clock, one seed per run."""
