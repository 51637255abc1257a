"""Metrics read a live core; log lines carry node id, term and role, as text or JSON."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from prometheus_client import CollectorRegistry, generate_latest

from raftkv.logging_setup import JsonFormatter, configure_logging, set_node_facts
from raftkv.metrics import Metrics

from .cluster import Cluster, put


def test_metrics_follow_the_leader_through_the_driver() -> None:
    async def body() -> None:
        c = Cluster()
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        c.start_all()
        leader = await c.leader()
        leader._observer = metrics  # observe from now on
        for i in range(5):
            await leader.propose(put(b"k%d" % i, b"v"))
        await leader.read_index()
        text = generate_latest(registry).decode()
        assert 'raftkv_role{role="leader"} 1.0' in text
        assert f"raftkv_leader_id {float(leader.node.id)}" in text
        assert 'raftkv_proposals_total{result="ok"} 5.0' in text
        assert "raftkv_fsync_duration_seconds_count" in text
        assert "raftkv_follower_match_index" in text
        assert "raftkv_proposal_commit_duration_seconds_count 5.0" in text
        assert "raftkv_read_index_wait_seconds_count 1.0" in text
        assert "raftkv_commit_apply_duration_seconds_count" in text
        await c.stop_all()

    asyncio.run(asyncio.wait_for(body(), 30))


def test_log_lines_carry_node_term_and_role() -> None:
    configure_logging(level="info", fmt="text", node_id=3)
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    set_node_facts(lambda: (3, 7, "leader"))
    logging.getLogger("raftkv.test").info("hello")
    assert "node=3 term=7 role=leader raftkv.test: hello" in stream.getvalue()
    handler.setFormatter(JsonFormatter())
    logging.getLogger("raftkv.test").warning("again")
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["node_id"] == 3 and record["term"] == 7 and record["msg"] == "again"
    logging.getLogger().removeHandler(handler)
