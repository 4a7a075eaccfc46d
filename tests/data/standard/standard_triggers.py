"""Triggers for dag_standard.py: they live in a module of their own because a triggerer
rebuilds a trigger from its class path (Airflow requires the same)."""

import asyncio

try:
    from airflow.triggers.base import BaseTrigger, TriggerEvent
except ImportError:
    from millstream import BaseTrigger, TriggerEvent


class EchoTrigger(BaseTrigger):
    """Fires at once with its payload."""

    def __init__(self, payload):
        super().__init__()
        self.payload = payload

    def serialize(self):
        return ("standard_triggers.EchoTrigger", {"payload": self.payload})

    async def run(self):
        await asyncio.sleep(0)
        yield TriggerEvent(self.payload)


class BrokenTrigger(BaseTrigger):
    """Raises while it waits."""

    def serialize(self):
        return ("standard_triggers.BrokenTrigger", {})

    async def run(self):
        await asyncio.sleep(0)
        raise RuntimeError("the service the trigger watches is gone")
        yield  # an async generator
