"""The targets judged against the figures, the workers' resources gathered from every
section, and the table the README shows."""

from __future__ import annotations

from typing import Any

from tests.bench.report import target

RSS_LIMIT_MB = 250
DRAIN_RATIO = 5
FRESHNESS_P99_MS = 1000
BURST_FACTOR = 10


def worst(value: Any, high: bool = True) -> float:
    """The worst repetition of a figure: its max when high is bad, else its min."""
    if isinstance(value, dict):
        return float(value["max"] if high else value["min"])
    return float(value)


def resources(report: dict[str, Any], stores: list[str]) -> dict[str, Any]:
    """The workers' peak RSS and CPU per point from every section (and PostgreSQL's CPU)."""
    per_drain = {
        kind: {
            workers: {
                key: report["drain"][kind][workers][key]
                for key in (
                    "worker_peak_rss_mb",
                    "worker_cpu_us_per_point",
                    "worker_cpu_us_per_point_after_startup",
                    "worker_startup_cpu_s",
                    "store_server_cpu_us_per_point",
                )
            }
            for workers in ("workers_1", "workers_2")
        }
        for kind in stores
    }
    peaks = [
        worst(figures["worker_peak_rss_mb"])
        for kind in per_drain.values()
        for figures in kind.values()
    ]
    peaks += [report["freshness"]["worker_peak_rss_mb"], report["burst"]["worker_peak_rss_mb"]]
    return {
        "peak_rss_mb_max": max(peaks),
        "drain": per_drain,
        "freshness_peak_rss_mb": report["freshness"]["worker_peak_rss_mb"],
        "burst_peak_rss_mb": report["burst"]["worker_peak_rss_mb"],
        "burst_cpu_us_per_point": report["burst"]["worker_cpu_us_per_point"],
    }


def judge(report: dict[str, Any], stores: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every target with its measured figure; a target holds only if every run meets it."""
    call = report["single"]["sdk_call_log_metrics_4"]
    e2e = report["single"]["ratio_end_to_end_vs_log_batch"]
    targets = [
        target("SDK call median, us", "<= 20", call["median_us"], worst(call["median_us"]) <= 20),
        target("SDK call p99, us", "<= 200", call["p99_us"], worst(call["p99_us"]) <= 200),
        target("1 trainer end to end vs log_batch", ">= 0.9x", e2e, worst(e2e, False) >= 0.9),
    ]
    for kind in stores:
        drain = report["drain"][kind]
        for workers in ("workers_1", "workers_2"):
            ratio = drain[f"ratio_{workers}_vs_log_batch"]
            targets.append(
                target(
                    f"drain {kind}, {workers.replace('_', ' ')} vs log_batch from as many"
                    " processes",
                    f">= {DRAIN_RATIO}x",
                    ratio,
                    worst(ratio, False) >= DRAIN_RATIO,
                )
            )
        never = drain["two_workers_not_slower_in_every_run"]
        targets.append(target(f"drain {kind}, 2 workers never slower than 1", "yes", never, never))
    fresh, burst = report["freshness"], report["burst"]
    p99 = fresh["p99_ms"]
    targets += [
        target(
            "freshness p99 at half capacity, ms",
            f"<= {FRESHNESS_P99_MS}",
            p99,
            p99 <= FRESHNESS_P99_MS,
        ),
        target(
            "burst offered, x capacity",
            f">= {BURST_FACTOR}",
            burst["offered_x_capacity"],
            burst["reached_target_rate"],
        ),
        target(
            "burst: points lost or duplicated",
            "0",
            burst["counts"]["missing"]
            + burst["counts"]["duplicated"]
            + burst["sdk_dropped_points"],
            burst["counts"]["exact"] and not burst["sdk_dropped_points"],
        ),
    ]
    used = resources(report, stores)
    rss = used["peak_rss_mb_max"]
    targets.append(target("worker peak RSS, MB", f"<= {RSS_LIMIT_MB}", rss, rss <= RSS_LIMIT_MB))
    return targets, used
