"""A guard for kombu's Redis transport, so a worker rides out a Redis restart.

When the broker connection drops while a worker holds an unacknowledged message (a run in
flight), Celery's consumer first `collect()`s the connection and then `close()`s it. In kombu's
Redis channel, the first close tries to finish its pending BRPOP read; that read fails with a
connection error *before* the channel is marked closed, and `collect()` then detaches the
transport from its connection (`transport.client = None`). The second close goes all the way: it
restores the unacknowledged message, builds a new Redis pool for it, and reads the connection
parameters from `transport.client` — None — raising AttributeError ("'NoneType' object has no
attribute 'hostname'", kombu#582, celery#10205). Celery ignores only connection errors there, so
the AttributeError ends the worker ("Unrecoverable error").

The guard makes that case what it is, a connection error: a channel whose connection is gone
has no parameters to connect with. Celery then drops the old connection and reconnects as for
any broker outage; the message stays in Redis's unacked set (restored after the visibility
timeout; the run is claimed at most once either way).
"""

from kombu.transport import redis as kombu_redis


def guard_redis_channel() -> None:
    """Install the guard (idempotent)."""
    channel = kombu_redis.Channel
    if getattr(channel._connparams, "agentops_guarded", False):
        return
    original = channel._connparams

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise kombu_redis.redis.exceptions.ConnectionError(
                "the broker connection of this channel was already closed"
            )
        return original(self, asynchronous=asynchronous)

    _connparams.agentops_guarded = True
    channel._connparams = _connparams
