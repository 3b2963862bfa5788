#!/usr/bin/env python3
"""ChatSDK's capacity and cost model (docs/capacity.md prints its output).

Per-core figures are what `loadtest` measured (docs/benchmarks.md, loadtest-results/*/report.json: each service's
CPU seconds over the run divided by the run's length, at the run's accepted rates); prices are AWS us-east-1
on-demand list prices. Run: python3 infra/capacity/model.py (prints Markdown tables)
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

HOURS_PER_MONTH = 730

# --- measured (2 shared cores; the load generator, Kafka, PostgreSQL and the services on the same machine) ------
# command-api: commands/s per core. rate-1000-small: 575 cmds/s at 0.336 cores (1,711); heavy 10k: 579 at 0.214
# (2,705); rate-1000: 741 at 0.209 (3,547). The lowest is used. Excluded: rate-5000-small (261 at 0.472), a run
# past the database pool's limit where most of the CPU went to requests answered 503 and retried.
COMMANDS_PER_CORE = 1_700
# projector: events/s per core beyond its idle cost. heavy 10k: 579 at 0.207 (2,797); rate-1000-small: 575 at
# 0.174 (3,305); idle cost: steady's 28 events/s took 0.071-0.083 cores.
PROJECTOR_EVENTS_PER_CORE = 2_800
PROJECTOR_IDLE_CORES = 0.08
# query-api: cores per 1,000 connected sockets (pings, heartbeats, presence; steady: 10,000 sockets at 17 msg/s
# took 0.123-0.142 cores, all of it charged to the sockets here) and deliveries/s per core in the chat mix
# (heavy 4k: 6,845 deliveries/s with 56 reads/s at 0.397 cores, less 4 x 0.014 for its sockets = 20,000/s;
# pure fan-out, query-bench: 106,000-126,000/s at 1.14 cores; rate-1000: 58,972/s at 0.304 cores; not used).
QUERY_CORES_PER_1K_SOCKETS = 0.014
DELIVERIES_PER_CORE = 20_000
SOCKET_KIB = 11  # query-bench: RSS delta / sockets, three runs
QUERY_BASE_MIB = 200  # query-api RSS at 0 sockets incl. the embedded search replica's caches (steady: 180 MiB at 10k)
# PostgreSQL: commands/s per core with everything on the machine: heavy 10k saturated at 579 cmds/s (PostgreSQL the
# bottleneck); 2-2-3 at 5,000 msg/s offered: 715 cmds/s with PostgreSQL at 73-86 % of a core. The lower is used.
PG_COMMANDS_PER_CORE = 600
# The chat mix of the seed's scenarios as loadtest plays them: per message sent, 1.8 commands (reactions, edits,
# read markers) and 20 deliveries (heavy 10k: 6,364/320; steady: 337/17.2 = 19.6).
COMMANDS_PER_MESSAGE = 1.8
DELIVERIES_PER_MESSAGE = 20
READS_PER_USER_PER_S = 0.0006  # steady: 5.9 reads/s (history, sync, search, lists) for 10,000 users
TARGET_UTILISATION = 0.7  # the HPAs' CPU target: sizes are peak load / 0.7
DUTY_CYCLE = 0.3  # per-request and per-GB items: the month averages 30 % of the peak rate (diurnal traffic)
EVENT_BYTES = 400  # a message.sent record on disk after lz4, with key and headers (codec bench: ~600 B JSON)
ROW_BYTES = 350  # a message row with its share of the history and id indexes in PostgreSQL
LOCAL_RETENTION_DAYS = 7  # MSK tiered storage: a week on the brokers' disks (RF 3), the rest in the tier
QUERY_POD_CORES = 1.5
QUERY_POD_SOCKETS = 50_000  # 50,000 x 11 KiB = 550 MiB; the container's open-file limit, not this laptop's 20,000
# MSK broker network baselines (MB/s) and the share we plan to use
BROKER_MB_S = {"kafka.m7g.large": 117, "kafka.m7g.xlarge": 234, "kafka.m7g.2xlarge": 469, "kafka.m7g.4xlarge": 938}
BROKER_HEADROOM = 0.5

# --- prices: us-east-1, on-demand, per month (730 h) ---------------------------------------------------------------
PRICE = {
    "eks": 0.10 * HOURS_PER_MONTH,
    "m6i.xlarge": 0.192 * HOURS_PER_MONTH,  # 4 vCPU, 16 GiB: the node groups' default type (x86, as the images)
    "spot_discount": 0.6,  # spot has run 55-70 % below on-demand for these types; the seed assumed 70 %
    "kafka.m7g.large": 0.204 * HOURS_PER_MONTH,
    "kafka.m7g.xlarge": 0.408 * HOURS_PER_MONTH,
    "kafka.m7g.2xlarge": 0.816 * HOURS_PER_MONTH,
    "kafka.m7g.4xlarge": 1.632 * HOURS_PER_MONTH,
    "msk_storage_gb": 0.10,
    "msk_tiered_gb": 0.06,
    "rds_gp3_maz_gb": 0.23,
    "db.r6g.large-maz": 0.45 * HOURS_PER_MONTH,
    "db.r6g.xlarge-maz": 0.90 * HOURS_PER_MONTH,
    "db.r6g.2xlarge-maz": 1.80 * HOURS_PER_MONTH,
    "db.r6g.4xlarge-maz": 3.60 * HOURS_PER_MONTH,
    "db.r6g.8xlarge-maz": 7.20 * HOURS_PER_MONTH,
    "alb": 0.0225 * HOURS_PER_MONTH,
    "alb_lcu": 0.008 * HOURS_PER_MONTH,  # an LCU holds 3,000 active connections
    "nat": 0.045 * HOURS_PER_MONTH,
    "waf_per_million": 0.60,
    "waf_fixed": 5 + 3 * 1,
}
DB_CORES = {"db.r6g.large-maz": 2, "db.r6g.xlarge-maz": 4, "db.r6g.2xlarge-maz": 8, "db.r6g.4xlarge-maz": 16,
            "db.r6g.8xlarge-maz": 32}
# The seed's own table for 100,000 users (scalability-analysis.md, "Capacity Planning")
SEED_100K = {"EKS control plane": 73, "worker nodes (10 x t3.xlarge)": 1500, "PostgreSQL db.r6g.2xlarge (one AZ)": 690,
             "Redis": 360, "S3 10 TB + transfer": 1140, "monitoring": 150}


@dataclass
class Scale:
    users: int
    messages_per_user_per_s: float = 0.01  # the seed's target: 1,000 msg/s for 100,000 users


def pods(cores: float, per_pod: float, minimum: int) -> int:
    return max(minimum, math.ceil(cores / per_pod))


def model(scale: Scale) -> dict:
    messages = scale.users * scale.messages_per_user_per_s
    commands = messages * COMMANDS_PER_MESSAGE
    deliveries = messages * DELIVERIES_PER_MESSAGE
    reads = scale.users * READS_PER_USER_PER_S
    command_cores = commands / COMMANDS_PER_CORE / TARGET_UTILISATION
    projector_cores = (PROJECTOR_IDLE_CORES + commands / PROJECTOR_EVENTS_PER_CORE) / TARGET_UTILISATION
    query_cores = (scale.users / 1000 * QUERY_CORES_PER_1K_SOCKETS + deliveries / DELIVERIES_PER_CORE) / TARGET_UTILISATION
    query_pods = max(pods(query_cores, QUERY_POD_CORES, 2), math.ceil(scale.users / QUERY_POD_SOCKETS))
    command_pods = pods(command_cores, 0.5, 2)
    # a consumer group uses at most one member per partition: partitions are fixed at topic creation
    partitions = 12 if commands <= 12 * 0.5 * PROJECTOR_EVENTS_PER_CORE * TARGET_UTILISATION else 96
    projector_pods = min(partitions, pods(projector_cores, 0.5, 2))
    support_cores = 0.5 + 1.0 + 1.0 + 1.5  # pgbouncer x2, apicurio x2, controllers/add-ons, prometheus + grafana
    requested = command_pods * 0.5 + query_pods * QUERY_POD_CORES + projector_pods * 0.5 + support_cores
    query_memory_gib = (scale.users * SOCKET_KIB / 1024 + query_pods * QUERY_BASE_MIB) / 1024
    # nodes: m6i.xlarge (4 vCPU) filled to 75 % (daemonsets, bin packing), at least 3 (one per AZ)
    nodes = max(3, math.ceil(requested / (4 * 0.75)))
    # the projectors and the support pods on on-demand nodes (a spot reclaim would rebalance the consumer
    # group), the two APIs on spot (stateless; a reclaimed pod's sockets resume on another node)
    on_demand_nodes = min(nodes, max(3, math.ceil((projector_pods * 0.5 + support_cores) / (4 * 0.75))))
    spot_nodes = nodes - on_demand_nodes
    pg_cores_needed = commands / PG_COMMANDS_PER_CORE / TARGET_UTILISATION
    db = next((name for name, cores in DB_CORES.items() if cores >= pg_cores_needed), "db.r6g.8xlarge-maz")
    db_beyond = pg_cores_needed > 32
    # Every query-api node reads the whole log twice (the realtime tail and its embedded search replica), the
    # projector group once: the brokers' egress is (2 x query pods + 1 + replication) x ingress, a third per broker.
    ingress_mb_s = commands * EVENT_BYTES / 1e6
    broker_mb_s = (ingress_mb_s * (2 * query_pods + 1) + 2 * ingress_mb_s) / 3
    broker = next((name for name, mb_s in BROKER_MB_S.items() if mb_s * BROKER_HEADROOM >= broker_mb_s),
                  "kafka.m7g.4xlarge")
    events_per_month = commands * DUTY_CYCLE * 3600 * HOURS_PER_MONTH
    log_logical_gb = events_per_month * EVENT_BYTES / 1e9
    local_log_gb = log_logical_gb / 30 * LOCAL_RETENTION_DAYS * 3
    rows_gb = messages * DUTY_CYCLE * 3600 * HOURS_PER_MONTH * ROW_BYTES / 1e9
    alb_lcus = max(1.0, scale.users / 3000)
    http_requests_per_month = (commands + reads) * DUTY_CYCLE * 3600 * HOURS_PER_MONTH
    node_cost = on_demand_nodes * PRICE["m6i.xlarge"] + spot_nodes * PRICE["m6i.xlarge"] * (1 - PRICE["spot_discount"])
    costs = {
        "EKS control plane": PRICE["eks"],
        f"nodes: {nodes} x m6i.xlarge ({on_demand_nodes} on-demand, {spot_nodes} spot)": node_cost,
        f"RDS PostgreSQL {db.replace('-maz', '')} Multi-AZ": PRICE[db],
        f"MSK 3 x {broker}": 3 * PRICE[broker],
        "MSK storage: a week on broker disks + tiered (first year's average)": local_log_gb * PRICE["msk_storage_gb"]
        + log_logical_gb * 6 * PRICE["msk_tiered_gb"],
        "RDS storage, Multi-AZ gp3 (first year's average)": rows_gb * 6 * PRICE["rds_gp3_maz_gb"],
        f"ALB ({alb_lcus:,.0f} LCU of sockets)": PRICE["alb"] + alb_lcus * PRICE["alb_lcu"],
        "NAT gateways (3 AZ)": 3 * PRICE["nat"],
        "WAF (rules + requests)": PRICE["waf_fixed"] + http_requests_per_month / 1e6 * PRICE["waf_per_million"],
        "S3 + CDN (the seed's figure, scaled by users)": 1140 * scale.users / 100_000,
        "CloudWatch logs, KMS, Secrets Manager": 40 + 60 * scale.users / 100_000,
    }
    return {
        "users": scale.users, "messages": messages, "commands": commands, "deliveries": deliveries, "reads": reads,
        "command_cores": command_cores, "projector_cores": projector_cores, "query_cores": query_cores,
        "command_pods": command_pods, "query_pods": query_pods, "projector_pods": projector_pods,
        "partitions": partitions, "query_memory_gib": query_memory_gib, "requested": requested, "nodes": nodes,
        "pg_cores_needed": pg_cores_needed, "db": db, "db_beyond": db_beyond, "broker": broker,
        "log_logical_gb": log_logical_gb, "rows_gb": rows_gb, "broker_mb_s": broker_mb_s, "costs": costs, "total": sum(costs.values()),
    }


def main() -> None:
    scales = [Scale(10_000), Scale(100_000), Scale(1_000_000)]
    results = [model(scale) for scale in scales]
    print("| | " + " | ".join(f"{r['users']:,} users" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    rows = [
        ("messages/s at peak (0.01 per user)", lambda r: f"{r['messages']:,.0f}"),
        ("commands/s (x1.8: reactions, edits, read markers)", lambda r: f"{r['commands']:,.0f}"),
        ("deliveries/s (x20)", lambda r: f"{r['deliveries']:,.0f}"),
        ("command-api cores at 70 % -> pods of 0.5 vCPU", lambda r: f"{r['command_cores']:.1f} -> {r['command_pods']}"),
        ("query-api cores at 70 % -> pods of 1.5 vCPU (<= 50k sockets)", lambda r: f"{r['query_cores']:.1f} -> {r['query_pods']}"),
        ("query-api socket memory (GiB, all pods)", lambda r: f"{r['query_memory_gib']:.1f}"),
        ("projector cores at 70 % -> pods (<= partitions)", lambda r: f"{r['projector_cores']:.1f} -> {r['projector_pods']}"),
        ("partitions of the channel topic", lambda r: f"{r['partitions']}"),
        ("vCPU requested in the cluster -> m6i.xlarge nodes", lambda r: f"{r['requested']:.1f} -> {r['nodes']}"),
        ("PostgreSQL cores at 70 % -> instance", lambda r: f"{r['pg_cores_needed']:.1f} -> {r['db'].replace('-maz', '')}" + (" (not enough)" if r['db_beyond'] else "")),
        ("Kafka traffic per broker, MB/s (ingress x readers) -> broker", lambda r: f"{r['broker_mb_s']:,.1f} -> {r['broker']}"),
        ("event log growth, GB/month (logical, 30 % duty)", lambda r: f"{r['log_logical_gb']:,.0f}"),
        ("read-model growth, GB/month", lambda r: f"{r['rows_gb']:,.0f}"),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    print()
    for r in results:
        print(f"Monthly cost, {r['users']:,} users:")
        print()
        print("| item | $/month |")
        print("|---|---:|")
        for item, cost in r["costs"].items():
            print(f"| {item} | {cost:,.0f} |")
        print(f"| **total** | **{r['total']:,.0f}** |")
        print(f"| per user | {r['total'] / r['users']:.3f} |")
        print()
    print("The seed's table for 100,000 users: " + ", ".join(f"{k} ${v:,}" for k, v in SEED_100K.items())
          + f" = ${sum(SEED_100K.values()):,}")


if __name__ == "__main__":
    sys.exit(main())
