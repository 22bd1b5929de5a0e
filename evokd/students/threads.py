"""Thread limits for training and prediction, restored afterwards: torch's intra-op threads, and
BLAS/OpenMP threads (threadpoolctl) for the spaCy students."""


class torch_threads:
    """Run a block with `n` intra-op threads, restoring the caller's setting afterwards."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)


class blas_threads:
    """Run a block with at most `n` BLAS/OpenMP threads (threadpoolctl, when installed)."""

    def __init__(self, n: int | None):
        self.n = n
        self._ctx = None

    def __enter__(self):
        if self.n:
            try:
                from threadpoolctl import threadpool_limits

                self._ctx = threadpool_limits(self.n)
            except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
                self._ctx = None
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.unregister()
