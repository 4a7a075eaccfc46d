"""`millstream_celery_queue_length` reads the brokers themselves: messages put on a real
Redis list and a real RabbitMQ queue are counted, and a queue nobody declared is empty."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Queue

from millstream.executors.celery import queue_lengths

from .test_celery import AMQP_URL, REDIS_URL, need_rabbitmq, need_redis


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_queue_depth_counts_waiting_messages_on_each_broker(broker: str) -> None:
    if broker == "redis":
        need_redis()
        url = REDIS_URL
    else:
        need_rabbitmq()
        url = AMQP_URL
    name = f"ms-depth-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    with Connection(url) as conn:
        producer = conn.Producer()
        for i in range(3):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key=name, declare=[queue])
        try:
            assert queue_lengths(url, [name, f"{name}-never-declared"]) == {
                name: 3,
                f"{name}-never-declared": 0,
            }
        finally:
            queue(conn.channel()).delete()
