"""The root of every error matih-ingest raises.

Each error says whether trying again can help (``retriable``): the worker retries a
retriable failure with backoff and sets a non-retriable one aside with its reason.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of all matih-ingest errors."""

    retriable: bool = False


class InvalidEventError(IngestError):
    """An event, or the input that would become one, breaks a rule of the contract.

    The message names the field and the rule it breaks.
    """


class KafkaUnavailableError(IngestError):
    """The Kafka cluster could not be reached within the allowed time."""

    retriable = True


class ConfigurationError(IngestError):
    """The settings cannot work with the cluster or store they name (a replication factor
    larger than the cluster, a store that does not answer): fix the setting, do not retry.
    """


class KafkaAccessDeniedError(IngestError):
    """The brokers refused this client's credential, or an operation its principal has
    no right to (an ACL missing, another tenant's topic). Trying again cannot help: the
    message names the principal and the refused operation; fix the credential or the
    ACLs.
    """
