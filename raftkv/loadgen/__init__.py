"""raftkv.loadgen: an asyncio load generator for raftkv (and anything else behind a ``Target``).

Used by ``raftkv-cli bench`` and by the benchmark suite in ``bench/``. Pieces:
- ``spec``: what load to offer (``LoadSpec``, ``Workload``), every bound validated once;
- ``targets``: the ``Target`` protocol and raftkv's two targets (its client library, and one raw
  grpc.aio unary call per operation to the leader);
- ``stats``: latency and error recording, percentiles, the per-second timeline;
- ``runner``: N concurrent workers, bounded in time and in operations, with a warm-up;
- ``report``: plain text, JSON and an optional PNG (matplotlib, only if installed).
"""

from raftkv.loadgen.report import describe_result, write_png
from raftkv.loadgen.runner import prefill, run_load
from raftkv.loadgen.spec import LoadSpec, Workload
from raftkv.loadgen.stats import LatencySummary, LoadResult
from raftkv.loadgen.targets import ClientTarget, RawTarget, Target, error_code

__all__ = [
    "ClientTarget",
    "LatencySummary",
    "LoadResult",
    "LoadSpec",
    "RawTarget",
    "Target",
    "Workload",
    "describe_result",
    "error_code",
    "prefill",
    "run_load",
    "write_png",
]
