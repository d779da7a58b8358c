"""The way out of a trainer: every logged call, from memory to Kafka's acknowledgement.

A call is appended to the ``buffer`` (which batches calls into events); the
``sender`` thread drains it every ``linger_ms``; the ``router`` sends each event to
``kafka`` directly, or through the on-disk spool (``producers.spool``) while Kafka
is out of reach or memory is full, with the encoded records waiting in the
``backlog``; ``unspool`` sends spooled records in order, for the router and for
``recovery``, which delivers a spool a dead process left behind.

The package has no public names: the SDK's facade (``producers``) is its surface.
"""

__all__: list[str] = []
