"""What the intake decided for each delivered message: how the consumer settles it."""

from __future__ import annotations

from enum import Enum


class Disposition(Enum):
    ACK = "ack"
    REQUEUE = "requeue"  # back to the queue; counts towards the delivery limit (poison)
    RETRY = "retry"  # the database is away: hold the message and try again, it is not at fault
