"""The aiokafka internals the project relies on, in one place.

Checked against aiokafka ``CHECKED_VERSIONS``; ``tests/unit/test_compat.py``
exercises each one, so an upgrade that moves one fails there first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.conn import create_conn
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition

__all__ = ["CHECKED_VERSIONS", "fail_pending", "group_owners", "probe_connection"]

CHECKED_VERSIONS = (">=0.14", "<0.15")
"""The aiokafka releases these uses were read from and tested against."""


def fail_pending(producer: AIOKafkaProducer, reason: str) -> None:
    """Fails every record ``producer`` has not sent yet, so that ``stop()`` returns at once
    instead of retrying against a broker that is gone.

    aiokafka has no public abort; failing the accumulator's batches is what its own
    sender does on a fatal error.
    """
    accumulator = producer._message_accumulator
    accumulator.fail_all(KafkaConnectionError(reason))


def group_owners(responses: Iterable[Any]) -> tuple[str, dict[TopicPartition, str]]:
    """A group's state and, per partition, the member holding it, from the raw
    ``DescribeGroups`` responses aiokafka's admin client returns.

    aiokafka returns the protocol responses undecoded; members' assignments are
    bytes in the consumer protocol, which only its coordinator module decodes.
    """
    owners: dict[TopicPartition, str] = {}
    state = "Unknown"
    for response in responses:
        for group in response.to_object()["groups"]:
            state = group["state"]
            if group["error_code"]:
                continue
            for member in group["members"]:
                assignment = member["member_assignment"]
                if not assignment:
                    continue
                for tp in ConsumerProtocol.ASSIGNMENT.decode(assignment).partitions():
                    owners[tp] = member["member_id"]
    return state, owners


async def probe_connection(host: str, port: int, options: dict[str, Any]) -> None:
    """Opens and closes one connection to ``host:port`` with the client ``options``
    (security ones included), raising what the handshake raised.

    aiokafka's clients log a refused SASL handshake and raise only "Unable to
    bootstrap", so a wrong password would read as a broker that is down; its
    connection function raises the broker's answer itself.
    """
    connection = await create_conn(host, port, **options)
    connection.close()
