"""The README's table: each figure as min / median / max, MLflow's beside it, the target
and whether every repetition met it."""

from __future__ import annotations

from typing import Any

from tests.bench.report import fmt

HEADER = (
    "| figure | matih-ingest | MLflow, same run | ratio | target | met |\n|---|---|---|---|---|---|"
)


def _met(targets: list[dict[str, Any]], *names: str) -> tuple[str, str]:
    """The targets called ``names``: what they ask, and whether all were met."""
    chosen = [item for item in targets if item["name"] in names]
    if not chosen:
        return "", ""
    met = all(item["met"] for item in chosen)
    return "; ".join(item["target"] for item in chosen), "yes" if met else "**no**"


def _row(figure: str, ours: str, theirs: str, ratio: str, judged: tuple[str, str]) -> str:
    return f"| {figure} | {ours} | {theirs} | {ratio} | {judged[0]} | {judged[1]} |"


def _drain_rows(report: dict[str, Any], stores: list[str]) -> list[str]:
    targets, rows = report["targets"], []
    trainers = report["settings"]["trainers"]
    for kind in stores:
        drain = report["drain"][kind]
        base = drain["mlflow_log_batch"]
        for workers in ("workers_1", "workers_2"):
            label = "1 worker" if workers == "workers_1" else "2 workers"
            name = f"drain {kind}, {workers.replace('_', ' ')} vs log_batch from as many processes"
            rows.append(
                _row(
                    f"drain into {kind}, {label}, points/s (after start-up)",
                    f"{fmt(drain[workers]['points_per_s'])}"
                    f" ({fmt(drain[workers]['points_per_s_after_connect'])})",
                    f"`log_batch` from {trainers} processes: {fmt(base['points_per_s'])}"
                    f" ({fmt(base['points_per_s_logging_only'])})",
                    f"{fmt(drain[f'ratio_{workers}_vs_log_batch'], 1)}x",
                    _met(targets, name),
                )
            )
        rows.append(
            _row(
                f"drain into {kind}: 2 workers never slower than 1",
                str(drain["two_workers_not_slower_in_every_run"]).lower(),
                "",
                "",
                _met(targets, f"drain {kind}, 2 workers never slower than 1"),
            )
        )
    return rows


def readme_table(report: dict[str, Any], stores: list[str]) -> str:
    """The Markdown table of ``report``, with a line saying how it was measured."""
    settings, targets = report["settings"], report["targets"]
    single, fresh, burst = report["single"], report["freshness"], report["burst"]
    call, mlflow_call = single["sdk_call_log_metrics_4"], single["mlflow_log_metrics_4"]
    e2e = single["end_to_end_1_trainer_1_worker_sqlite"]
    batch = single["mlflow_log_batch_1_process_sqlite"]
    per_point = single["mlflow_log_metric_per_point_sqlite"]
    used = report["worker_resources"]
    rows = [
        _row(
            "`run.log_metrics` of 4 metrics, median / p99 per call, us",
            f"{fmt(call['median_us'], 1)}; {fmt(call['p99_us'], 1)}",
            f"`mlflow.log_metrics` into sqlite: {fmt(mlflow_call['median_us'])};"
            f" {fmt(mlflow_call['p99_us'])}",
            "",
            _met(targets, "SDK call median, us", "SDK call p99, us"),
        ),
        _row(
            "1 trainer, 1 worker into sqlite, points/s (SDK to Kafka acked)",
            f"{fmt(e2e['points_per_s'])} ({fmt(e2e['sdk_to_kafka_acked_points_per_s'])})",
            f"`log_batch` of 1000: {fmt(batch['points_per_s'])};"
            f" `log_metric` per point: {fmt(per_point['points_per_s'])}",
            f"{fmt(single['ratio_end_to_end_vs_log_batch'], 2)}x",
            _met(targets, "1 trainer end to end vs log_batch"),
        ),
        *_drain_rows(report, stores),
        _row(
            f"freshness at half capacity ({fresh['store']}, {fresh['duration_s']:g} s), p50 / p99"
            f" / max, ms (poll every {fmt(fresh['poll_interval_ms'])} ms)",
            f"{fmt(fresh['p50_ms'])} / {fmt(fresh['p99_ms'])} / {fmt(fresh['max_ms'])}",
            "",
            "",
            _met(targets, "freshness p99 at half capacity, ms"),
        ),
        _row(
            f"burst ({burst['store']}, {burst['duration_s']:g} s): offered points/s, x capacity",
            f"{fmt(burst['offered_points_per_s'])} ({fmt(burst['offered_x_capacity'], 1)}x)",
            "",
            "",
            _met(targets, "burst offered, x capacity"),
        ),
        _row(
            "burst: lost or duplicated points; seconds to drain after it",
            f"{burst['counts']['missing'] + burst['counts']['duplicated']}"
            f" of {burst['points']:,}; {fmt(burst['seconds_to_drain_after_burst'], 1)} s",
            "",
            "",
            _met(targets, "burst: points lost or duplicated"),
        ),
    ]
    for kind, configs in used["drain"].items():
        for workers, figures in configs.items():
            store_cpu = figures["store_server_cpu_us_per_point"]
            rows.append(
                _row(
                    f"worker CPU per point, {kind}, {workers[-1]} worker(s), us"
                    " (after start-up; store server)",
                    f"{fmt(figures['worker_cpu_us_per_point'])}"
                    f" ({fmt(figures['worker_cpu_us_per_point_after_startup'])};"
                    f" {fmt(store_cpu) if store_cpu is not None else 'in the worker'})",
                    "",
                    "",
                    ("", ""),
                )
            )
    rows.append(
        _row(
            "worker peak RSS, MB (highest of every section)",
            fmt(used["peak_rss_mb_max"]),
            "",
            "",
            _met(targets, "worker peak RSS, MB"),
        )
    )
    repetitions = settings["repetitions"]
    intro = (
        f"`make bench`, {report['machine']['cores']} cores, min / median / max of"
        f" {repetitions} repetition{'s' if repetitions > 1 else ''}"
        f" ({settings['points']:,} points from"
        f" {settings['trainers']} trainers for the drain rates); every ratio is taken within"
        " one repetition, and a target is met only if every repetition meets it."
    )
    return "\n".join([intro, "", HEADER, *rows])
