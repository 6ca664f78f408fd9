"""A background sampler of the machine's CPU, memory, disk and network.

Reading CPU usage needs an interval between two readings; the sampler takes one every
``PRISM_SAMPLE_INTERVAL`` seconds so that no request ever waits for one.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from prism_mcp.runtime import Runtime, background_task

__all__ = ["Sample", "latest_sample", "take_sample"]

_STATE_KEY = "sampler.latest"


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of the machine; rates are per second since the previous reading."""

    taken_at: float
    cpu_percent: float
    cpu_count: int
    load_average: tuple[float, float, float]
    memory_total: int
    memory_available: int
    memory_used: int
    memory_percent: float
    swap_percent: float
    disk_path: str
    disk_total: int
    disk_used: int
    disk_free: int
    disk_percent: float
    net_bytes_sent: int
    net_bytes_recv: int
    net_packets_sent: int
    net_packets_recv: int
    net_send_rate: float
    net_recv_rate: float
    boot_time: float


def take_sample(disk_path: Path, previous: Sample | None) -> Sample:
    """Read the machine now. The CPU figure covers the time since the previous call of ``cpu_percent``."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    net = psutil.net_io_counters()
    now = time.time()
    send_rate = recv_rate = 0.0
    if previous is not None and now > previous.taken_at:
        elapsed = now - previous.taken_at
        send_rate = max(0.0, (net.bytes_sent - previous.net_bytes_sent) / elapsed)
        recv_rate = max(0.0, (net.bytes_recv - previous.net_bytes_recv) / elapsed)
    load = os.getloadavg()
    return Sample(
        taken_at=now,
        cpu_percent=psutil.cpu_percent(interval=None),
        cpu_count=psutil.cpu_count() or 1,
        load_average=(load[0], load[1], load[2]),
        memory_total=memory.total,
        memory_available=memory.available,
        memory_used=memory.used,
        memory_percent=memory.percent,
        swap_percent=psutil.swap_memory().percent,
        disk_path=str(disk_path),
        disk_total=disk.total,
        disk_used=disk.used,
        disk_free=disk.free,
        disk_percent=disk.percent,
        net_bytes_sent=net.bytes_sent,
        net_bytes_recv=net.bytes_recv,
        net_packets_sent=net.packets_sent,
        net_packets_recv=net.packets_recv,
        net_send_rate=send_rate,
        net_recv_rate=recv_rate,
        boot_time=psutil.boot_time(),
    )


def _disk_path(runtime: Runtime) -> Path:
    path = runtime.settings.data_path
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


async def latest_sample(runtime: Runtime) -> Sample:
    """The newest reading; a process without the sampler (``prism call``) takes one, waiting 0.2 s for CPU."""
    sample: Sample | None = runtime.state.get(_STATE_KEY)
    if sample is not None:
        return sample
    psutil.cpu_percent(interval=None)
    await asyncio.sleep(0.2)
    sample = await asyncio.to_thread(take_sample, _disk_path(runtime), None)
    runtime.state[_STATE_KEY] = sample
    return sample


@background_task("sampler", services=("api", "mcp", "stdio", "worker"))
async def run_sampler(runtime: Runtime) -> None:
    """Take a reading every ``PRISM_SAMPLE_INTERVAL`` seconds for the life of the process."""
    psutil.cpu_percent(interval=None)
    interval = runtime.settings.sample_interval
    await asyncio.sleep(min(interval, 0.5))
    while True:
        previous: Sample | None = runtime.state.get(_STATE_KEY)
        runtime.state[_STATE_KEY] = await asyncio.to_thread(take_sample, _disk_path(runtime), previous)
        await asyncio.sleep(interval)
