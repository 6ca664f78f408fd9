"""System metrics of the machine PRISM runs on (``/monitoring/metrics``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Scope, capability
from prism_mcp.sampler import latest_sample

__all__ = ["DiskUsage", "MemoryUsage", "NetworkIO", "SystemMetrics"]


class MemoryUsage(BaseModel):
    total_bytes: int
    available_bytes: int
    used_bytes: int
    percent: float
    swap_percent: float


class DiskUsage(BaseModel):
    path: str = Field(description="The file system holding PRISM's data directory.")
    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent: float


class NetworkIO(BaseModel):
    bytes_sent: int
    bytes_recv: int
    packets_sent: int
    packets_recv: int
    send_bytes_per_second: float
    recv_bytes_per_second: float


class SystemMetrics(BaseModel):
    cpu_percent: float = Field(description="CPU use over the last sampling interval, 0-100.")
    cpu_count: int
    load_average: list[float] = Field(description="1, 5 and 15 minute load averages.")
    memory_percent: float
    disk_percent: float
    memory: MemoryUsage
    disk: DiskUsage
    network: NetworkIO
    uptime_seconds: float = Field(description="Seconds since the machine booted.")
    sampled_at: datetime
    sample_age_seconds: float = Field(description="How old the reading is; readings are taken in the background.")


@capability("GET /monitoring/metrics", scope=Scope.READ, read_only=True, resource="prism://monitoring/metrics")
async def monitoring_metrics(call: Call) -> SystemMetrics:
    """CPU, memory, disk and network I/O of the machine, with load and uptime.

    Compare with the thresholds: CPU warning 80 % / critical 95 %, memory and disk 85 % / 95 %.
    """
    s = await latest_sample(call.runtime)
    now = time.time()
    return SystemMetrics(
        cpu_percent=round(s.cpu_percent, 2),
        cpu_count=s.cpu_count,
        load_average=[round(x, 2) for x in s.load_average],
        memory_percent=round(s.memory_percent, 2),
        disk_percent=round(s.disk_percent, 2),
        memory=MemoryUsage(
            total_bytes=s.memory_total,
            available_bytes=s.memory_available,
            used_bytes=s.memory_used,
            percent=s.memory_percent,
            swap_percent=s.swap_percent,
        ),
        disk=DiskUsage(
            path=s.disk_path,
            total_bytes=s.disk_total,
            used_bytes=s.disk_used,
            free_bytes=s.disk_free,
            percent=s.disk_percent,
        ),
        network=NetworkIO(
            bytes_sent=s.net_bytes_sent,
            bytes_recv=s.net_bytes_recv,
            packets_sent=s.net_packets_sent,
            packets_recv=s.net_packets_recv,
            send_bytes_per_second=round(s.net_send_rate, 1),
            recv_bytes_per_second=round(s.net_recv_rate, 1),
        ),
        uptime_seconds=round(now - s.boot_time, 1),
        sampled_at=datetime.fromtimestamp(s.taken_at, UTC),
        sample_age_seconds=round(max(0.0, now - s.taken_at), 3),
    )
