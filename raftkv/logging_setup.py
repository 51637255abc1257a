"""The one place that configures logging handlers (stdlib ``logging``), text or JSON.

Every line carries the node id, its current term and role, injected by a filter that reads them
from a callable the server installs once the node exists (``-`` before that).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable

_TEXT = (
    "%(asctime)s %(levelname)s node=%(node_id)s term=%(term)s role=%(role)s %(name)s: %(message)s"
)

NodeFacts = Callable[[], tuple[int, int, str]]
"""Returns (node id, term, role)."""


class _NodeFilter(logging.Filter):
    def __init__(self, node_id: int) -> None:
        super().__init__()
        self.node_id = node_id
        self.facts: NodeFacts | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.facts is not None:
            node_id, term, role = self.facts()
            record.node_id, record.term, record.role = node_id, term, role
        else:
            record.node_id, record.term, record.role = self.node_id, "-", "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "node_id": getattr(record, "node_id", None),
            "term": getattr(record, "term", None),
            "role": getattr(record, "role", None),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


_installed: list[_NodeFilter] = []


def configure_logging(*, level: str, fmt: str, node_id: int) -> None:
    """Install one stderr handler on the root logger (replacing any earlier ones)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    node_filter = _NodeFilter(node_id)
    _installed[:] = [node_filter]
    handler.addFilter(node_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def set_node_facts(facts: NodeFacts) -> None:
    """Called once the node exists, so log lines show its live term and role."""
    for node_filter in _installed:
        node_filter.facts = facts
