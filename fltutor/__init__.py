"""fltutor: a teaching kit on the security and privacy of federated learning.

Importing the package imports nothing else: the command line answers ``fltutor --help`` without
waiting seconds for torch. Torch's thread count is capped where every run starts, in
``fltutor.config`` (see ``fltutor.threads``).
"""

__version__ = "0.1.0"
