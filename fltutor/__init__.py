"""fltutor: a teaching kit on the security and privacy of federated learning."""

__version__ = "0.1.0"
