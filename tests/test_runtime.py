"""Stopping a runtime ends its background tasks even when a cancellation is swallowed once."""

from __future__ import annotations

import asyncio

from prism_mcp.runtime import cancel_and_wait


async def test_a_task_that_swallows_its_first_cancellation_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what a library that loses a cancellation looks like from outside
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.02)
    pending = await cancel_and_wait([task], 5.0)
    assert pending == set()
    assert task.cancelled()
    assert swallowed == 1
