"""The dataset tools' error: one line naming the problem, exit status 2 at the command line."""


class DatasetError(Exception):
    """Raised when a batch cannot become a dataset, or a dataset cannot be trained on; the
    message is one line naming the problem."""
