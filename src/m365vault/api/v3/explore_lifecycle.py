"""Restore sessions inside the server: the explorer on the app's state, and the background task
that stops idle sessions while the server runs."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from m365vault.control.restore_actions import RestoreActions


def install_restore(app: FastAPI, actions: RestoreActions | None) -> None:
    """Without `actions` the explore trees answer 501 (nothing to browse with)."""
    app.state.restore = actions.explorer if actions is not None else None
    app.state.restore_actions = actions
    if actions is None:
        return
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        tasks.append(asyncio.create_task(actions.explorer.run_expiry(), name="restore-session-expiry"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await actions.explorer.wiring.repositories.close()

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)
