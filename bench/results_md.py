"""Rendering bench/RESULTS.md from the suite's report (the same dict saved as results.json)."""

from __future__ import annotations

from typing import Any

SCENARIO_ORDER = ["put c=1", "put c=16", "put c=64", "put c=256", "read c=64", "mixed 90/10 c=64"]


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if "error" in row:
        return f"failed: {row['error'][:80]}"
    lat = row["latency"]
    errors = sum(row["errors"].values())
    tail = f", {errors} err" if errors else ""
    return (f"{row['throughput_per_s']:,.0f}/s (p50 {lat['p50_ms']:.1f}, "
            f"p99 {lat['p99_ms']:.1f} ms{tail})")


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def _elections(row: dict[str, Any]) -> str:
    count = row.get("elections")
    return "leader unknown" if count is None else f"term +{count}"


def _rows_by(cluster: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["scenario"], r["label"]): r for r in cluster.get("rows", [])}


def _cluster_table(cluster: dict[str, Any]) -> list[str]:
    if "error" in cluster:
        return [f"### {cluster['size']} nodes", "", f"Failed: `{cluster['error']}`", ""]
    by = _rows_by(cluster)
    lines = [
        f"### {cluster['size']} nodes",
        "",
        "| scenario | raftkv (client library) | raftkv (raw gRPC) | etcd (raw gRPC) "
        "| client/etcd | raw/etcd | p50 client/etcd | elections during the run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in SCENARIO_ORDER:
        client, raw, etcd = (by.get((name, t)) for t in ("raftkv-client", "raftkv-raw", "etcd"))
        if client is None and raw is None and etcd is None:
            continue
        tput = {k: (v or {}).get("throughput_per_s") for k, v in
                (("c", client), ("r", raw), ("e", etcd))}
        p50 = {k: ((v or {}).get("latency") or {}).get("p50_ms") for k, v in
               (("c", client), ("e", etcd))}
        changed = [f"{t} ({_elections(v)})" for t, v in
                   (("client", client), ("raw", raw), ("etcd", etcd))
                   if v and v.get("leader_changed")]
        lines.append(
            f"| {name} | {_cell(client)} | {_cell(raw)} | {_cell(etcd)} "
            f"| {_ratio(tput['c'], tput['e'])} | {_ratio(tput['r'], tput['e'])} "
            f"| {_ratio(p50['c'], p50['e'])} | {', '.join(changed) or 'no'} |"
        )
    return [*lines, "", *_cpu_table(by), ""]


def _cpu(row: dict[str, Any] | None) -> str:
    cpu = (row or {}).get("cpu_ms_per_op")
    if not cpu:
        return "-"
    return f"{cpu['cluster']:.2f} ({cpu['busiest_node']:.2f})"


def _cpu_table(by: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    lines = [
        "CPU per operation, ms (all nodes together; in brackets the busiest node). Less "
        "sensitive to the machine's other load than throughput:",
        "",
        "| scenario | raftkv (client library) | raftkv (raw gRPC) | etcd | raw/etcd (cluster) |",
        "|---|---|---|---|---|",
    ]
    for name in SCENARIO_ORDER:
        client, raw, etcd = (by.get((name, t)) for t in ("raftkv-client", "raftkv-raw", "etcd"))
        if client is None and raw is None and etcd is None:
            continue
        ours = ((raw or {}).get("cpu_ms_per_op") or {}).get("cluster")
        theirs = ((etcd or {}).get("cpu_ms_per_op") or {}).get("cluster")
        lines.append(f"| {name} | {_cpu(client)} | {_cpu(raw)} | {_cpu(etcd)} "
                     f"| {_ratio(ours, theirs)} |")
    return lines


def _targets(report: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str, bool | None]] = []
    clusters = report.get("clusters") or []
    if clusters:
        by = _rows_by(clusters[0])
        def get(s: str, t: str, field: str) -> float | None:
            row = by.get((s, t))
            if row is None or "error" in row:
                return None
            return float(row["latency"]["p50_ms"] if field == "p50" else row[field])
        for scenario, label, field, limit, better in (
            ("put c=64", "puts, 64 clients, client library: throughput >= 1.0x etcd",
             "throughput_per_s", 1.0, "high"),
            ("put c=1", "puts, 1 client: p50 latency <= 1.5x etcd's", "p50", 1.5, "low"),
            ("read c=64", "linearizable reads, 64 clients: throughput >= 1.0x etcd",
             "throughput_per_s", 1.0, "high"),
        ):
            ours, theirs = get(scenario, "raftkv-client", field), get(scenario, "etcd", field)
            if ours is None or not theirs:
                rows.append((label, "not measured", None))
                continue
            ratio = ours / theirs
            met = ratio >= limit if better == "high" else ratio <= limit
            rows.append((label, f"{ratio:.2f}x ({ours:,.1f} vs {theirs:,.1f})", met))
    fo = (report.get("failover") or {}).get("raftkv")
    if fo:
        median = fo.get("median_ms")
        rows.append(("write gap after kill -9 of the leader, defaults: median <= 500 ms",
                     f"{median} ms (trials {fo['trials_ms']})",
                     None if median is None else median <= 500))
    mem = report.get("memory")
    if mem and "error" not in mem:
        idle = mem["raftkv_idle_mb"]
        rows.append(("RSS <= 60 MB per node idle", f"{max(idle)} MB (nodes {idle})",
                     max(idle) <= 60))
        stages = (mem.get("raftkv_loaded") or {}).get("stages") or []
        if len(stages) >= 2:
            first, last = max(stages[0]["rss_mb"]), max(stages[-1]["rss_mb"])
            keys = stages[-1]["keys"]
            rows.append((f"memory after N keys bounded by LevelDB's cache (N={keys:,})",
                         f"max RSS {first} MB at {stages[0]['keys']:,} keys -> {last} MB at "
                         f"{keys:,} keys", last <= 1.25 * first + 10))
    soak = (clusters[0].get("soak") if clusters else None)
    if soak:
        rows.append((f"no leader change during a {soak['measured_s']:.0f} s full-load run",
                     f"leader {soak['leader_before']} -> {soak['leader_after']}",
                     not soak["leader_changed"]))
    rows.append(("durable appends >= 0.8x raw plyvel WriteBatch(sync=True)",
                 "see bench/STORAGE.md (storage owner's benchmark)", None))
    mark = {True: "met", False: "NOT met", None: "-"}
    return ["| target | measured | status |", "|---|---|---|",
            *(f"| {t} | {m} | {mark[ok]} |" for t, m, ok in rows), ""]


def _failover(report: dict[str, Any]) -> list[str]:
    fo = report.get("failover")
    if not fo:
        return []
    if "error" in fo:
        return ["## Failover", "", f"Failed: `{fo['error']}`", ""]
    lines = ["## Failover (write gap after kill -9 of the leader, 16 writers)", "",
             "| system | median | trials (ms) | failed trials |", "|---|---|---|---|"]
    for label, key in (("raftkv, defaults (heartbeat 50 ms, election 150 ms)", "raftkv"),
                       ("etcd, heartbeat 50 ms / election 300 ms", "etcd_50_300"),
                       ("etcd, defaults (heartbeat 100 ms, election 1000 ms)", "etcd_defaults")):
        r = fo.get(key)
        if r is None:
            continue
        lines.append(f"| {label} | {r['median_ms']} ms | {r['trials_ms']} | "
                     f"{r['failed_trials']} |")
    return [*lines, ""]


def _memory(report: dict[str, Any]) -> list[str]:
    mem = report.get("memory")
    if not mem:
        return []
    if "error" in mem:
        return ["## Memory", "", f"Failed: `{mem['error']}`", ""]
    loaded = mem.get("raftkv_loaded") or {}
    lines = ["## Memory (RSS per node, MB)", "",
             f"- idle: raftkv {mem['raftkv_idle_mb']}, etcd {mem['etcd_idle_mb']}",
             f"- idle CPU per node (cores): raftkv {mem.get('raftkv_idle_cpu', '-')}, "
             f"etcd {mem.get('etcd_idle_cpu', '-')}",
             f"- raftkv while loading {loaded.get('target_keys', 0):,} keys of 256 B "
             f"({loaded.get('written_keys', 0):,} written within the time bound):", "",
             "| keys written | RSS per node (MB) | load rate |", "|---|---|---|"]
    for stage in loaded.get("stages", []):
        lines.append(f"| {stage['keys']:,} | {stage['rss_mb']} | {stage['rate_per_s']:,}/s |")
    return [*lines, ""]


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# raftkv benchmark results",
        "",
        "Written by `python -m bench.run` (see bench/README.md). All systems on the same machine "
        "in the same run, on loopback, fsync on; etcd is Debian's etcd-server; raftkv is this "
        "checkout. Throughput is operations per second over the measured window (after warm-up); "
        "latencies in ms.",
        "",
        "## Machine and run",
        "",
        f"- date (UTC): {m['date_utc']}; commit {m['commit']}; {m['etcd']}; Python {m['python']}",
        f"- {m['nproc']} cores, {m['memory_gib']} GiB, {m['cpu_model']}",
        f"- load average (1/5/15 min) at start: {m['load_average']}; at end: "
        f"{report.get('load_average_end', '?')} (the machine is shared: other work was running)",
        f"- command: `{report['command']}` ({report.get('elapsed_s', '?')} s)",
        "",
        "## Targets (issue 10)",
        "",
        *_targets(report),
        "## Cluster throughput side by side",
        "",
    ]
    for cluster in report.get("clusters") or []:
        lines += _cluster_table(cluster)
    soak = (report.get("clusters") or [{}])[0].get("soak")
    if soak:
        lines += ["## Soak", "", f"- {soak['run']}: {_cell(soak)}; leader changed: "
                  f"{soak['leader_changed']}", ""]
    lines += _failover(report) + _memory(report)
    notes = report.get("notes") or []
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    core = report.get("core")
    if core:
        lines += ["## Core micro-benchmarks (bench/bench_core.py)", ""]
        if "output" in core:
            body = [("###" + line[1:]) if line.startswith("# ") else line
                    for line in core["output"].rstrip().splitlines()]
            lines += [f"`{core['command']}` (exit {core['exit']}), its output:", "", *body, ""]
        else:
            lines += [f"{core}", ""]
    return "\n".join(lines) + "\n"
