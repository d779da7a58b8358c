"""The on-disk spool: a process's events wait here, bounded and CRC-checked, while Kafka is away.

A spool is one ``directory`` per process, made of append-only ``segment`` files.
"""

__all__: list[str] = []
