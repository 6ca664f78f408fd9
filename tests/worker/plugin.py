"""A capability that only test worker processes load: it pauses, so a test can kill a worker mid-job.

Imported by the worker subprocesses the tests start (never by the test process itself), so the registry the
rest of the suite sees is the product's.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Scope, capability


class Paused(BaseModel):
    seconds: float


@capability("POST /testing/slow-probe", scope=Scope.OPERATE)
async def slow_probe(
    call: Call, seconds: Annotated[float, Field(ge=0, le=60, description="How long to pause.")] = 1.0
) -> Paused:
    """Pause for a while, then answer; exists only in test worker processes."""
    await asyncio.sleep(seconds)
    return Paused(seconds=seconds)
