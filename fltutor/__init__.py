"""fltutor: a teaching kit on the security and privacy of federated learning."""

__version__ = "0.1.0"

from .environment import fit_threads_to_cpus  # noqa: E402

# In a container with a CPU quota (Binder, CI) torch would start one thread per *host* core.
fit_threads_to_cpus()
