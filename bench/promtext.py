"""Reading a node's Prometheus /metrics (loopback only) and counting what one client op costs.

``scrape`` returns {series: value}; ``per_op`` turns the difference of two scrapes into counts per
client operation for the series that explain a node's work: fsyncs, entries per persist, peer
messages received by method, peer stream writes, forwarded requests.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict

SCRAPE_TIMEOUT_S = 3.0
INTERESTING = (
    "raftkv_fsync_duration_seconds_count",
    "raftkv_persist_entries_count",
    "raftkv_persist_entries_sum",
    "raftkv_peer_messages_received_total",
    "raftkv_peer_rpc_duration_seconds_count",
    "raftkv_forwarded_requests_total",
    "raftkv_applied_entries_total",
    "raftkv_proposals_total",
    "raftkv_client_requests_total",
)


def scrape(url: str) -> dict[str, float]:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("metrics are only read from loopback")
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
        text = response.read().decode()
    series: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            series[name] = float(value)
        except ValueError:
            continue
    return series


def per_op(before: dict[str, float], after: dict[str, float], ops: int) -> dict[str, float]:
    """Per client operation: each interesting series' increase, summed over other labels
    except ``method``."""
    totals: dict[str, float] = defaultdict(float)
    for name, value in after.items():
        base = name.split("{", 1)[0]
        if base not in INTERESTING:
            continue
        label = ""
        if 'method="' in name:
            label = "{" + name.split('method="', 1)[1].split('"', 1)[0] + "}"
        totals[base + label] += value - before.get(name, 0.0)
    return {k: round(v / max(1, ops), 3) for k, v in sorted(totals.items()) if v}
