"""The RabbitMQ side of access (README, Risk and access): a strategy user set up as the README
says can publish requests through the `N.requests` exchange and bind to its own events only;
RabbitMQ itself refuses its publishes to `N.control`, its bindings to other strategies' events,
and a `user_id` other than its own."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed
from yarl import URL

from tests.support.services import unavailable
from worker.messaging.topology import Names, declare, delete_all

pytestmark = pytest.mark.integration


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def strategy_user(user: str, password: str, names: Names, strategy: str) -> None:
    """The README's set-up of a strategy user, as an operator would type it."""
    ns = names.namespace.replace(".", r"\.")
    rabbitmqctl("add_user", user, password)
    rabbitmqctl("set_permissions", "-p", "/", user,
                r"^amq\.gen-.*$",  # configure: only its own server-named queues
                rf"^({ns}\.requests|amq\.gen-.*)$",  # write: the requests exchange only
                rf"^({ns}\.events|amq\.gen-.*)$")  # read: the events exchange, its own queues
    rabbitmqctl("set_topic_permissions", "-p", "/", user, names.events,
                "^$",  # it publishes no events
                rf"^[^.]+(\.[^.]+)*\.{strategy}$")  # it binds to its own strategy's events


@pytest.fixture
async def setup(amqp_url: str) -> AsyncIterator[tuple[Names, str, str]]:
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl is not installed here",
                    "the RabbitMQ permission test needs it to create a user")
    names = Names(f"t{uuid.uuid4().hex[:10]}")
    admin = await aio_pika.connect(amqp_url)
    channel = await admin.channel()
    await declare(channel, names)
    user, password = f"twap_strat_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await asyncio.to_thread(strategy_user, user, password, names, "alpha_1")
    try:
        url = str(URL(amqp_url).with_user(user).with_password(password))
        yield names, url, user
    finally:
        await asyncio.to_thread(rabbitmqctl, "delete_user", user)
        await delete_all(channel, names)
        await admin.close()


async def depth(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def test_rabbitmq_enforces_the_strategy_users_permissions(
        setup: tuple[Names, str, str], amqp_url: str) -> None:
    """One user set-up (rabbitmqctl takes seconds a call) for the three refusals."""
    await reaches_requests_but_never_control(setup, amqp_url)
    await forged_user_id_is_refused(setup)
    await binds_to_its_own_events_only(setup)


async def reaches_requests_but_never_control(setup: tuple[Names, str, str],
                                             amqp_url: str) -> None:
    names, url, user = setup
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        entry = await channel.get_exchange(names.requests, ensure=False)
        await entry.publish(aio_pika.Message(b"{}", user_id=user), routing_key=names.requests)
        assert await depth(amqp_url, names.requests) == 1

        # The default exchange (which routes to any queue, N.control too) is not writable.
        with pytest.raises(ChannelAccessRefused, match=r"amq\.default"):
            await channel.default_exchange.publish(aio_pika.Message(b"{}", user_id=user),
                                                   routing_key=names.control)
        # Through the requests exchange, N.control is unroutable: returned, never queued.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        entry = await channel.get_exchange(names.requests, ensure=False)
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await entry.publish(aio_pika.Message(b"{}", user_id=user),
                                routing_key=names.control, mandatory=True)
        assert await depth(amqp_url, names.control) == 0
    finally:
        await connection.close()


async def forged_user_id_is_refused(setup: tuple[Names, str, str]) -> None:
    names, url, user = setup
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        entry = await channel.get_exchange(names.requests, ensure=False)
        with pytest.raises(ChannelPreconditionFailed,
                           match=f"user_id property set to 'ops_admin' but authenticated user "
                                 f"was '{user}'"):
            await entry.publish(aio_pika.Message(b"{}", user_id="ops_admin"),
                                routing_key=names.requests)
    finally:
        await connection.close()


async def binds_to_its_own_events_only(setup: tuple[Names, str, str]) -> None:
    names, url, _ = setup
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        events = await channel.get_exchange(names.events, ensure=False)
        await queue.bind(events, routing_key="slice.*.alpha_1")
        await queue.bind(events, routing_key="#.alpha_1")
        with pytest.raises(ChannelAccessRefused, match="topic"):
            await queue.bind(events, routing_key="#")
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        with pytest.raises(ChannelAccessRefused):
            await queue.bind(events, routing_key="slice.submitted.beta_2")
    finally:
        await connection.close()
