"""Chaos suite for raftkv: real processes, real faults, and a linearizability checker.

Pure, reusable pieces live in ``lincheck`` (history, model, checker, timeline rendering); the
Linux network-namespace harness is ``netns``; the delaying TCP proxy is ``delay_proxy``; the
client workload generator and recorder is ``workload``.
"""
