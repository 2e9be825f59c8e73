"""Cross-validation with unlabeled rows (label -1) kept out of every test set."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import check_cv
from sklearn.utils.validation import column_or_1d

from ._base import labeled_rows


class SemiSupervisedSplit:
    """Cross-validation over the labeled rows; unlabeled rows join every training set.

    Rows labelled -1 (the ``sklearn.semi_supervised`` convention that ``DyMoClassifier.fit``
    follows) have no label to score against, yet they train the recoverer. This splitter runs
    ``cv`` on the labeled rows alone and adds every unlabeled row to each training set, so
    ``cross_val_score``, ``cross_validate`` and ``GridSearchCV`` fit on labeled + unlabeled rows
    and score on labeled rows only.

    With ``groups``, an unlabeled row joins a training set only when its group is not tested
    there, so no tested patient's other records reach the recoverer.

    Parameters
    ----------
    cv : int, cross-validation generator or iterable, default=5
        How to split the labeled rows, as scikit-learn's ``cv`` argument: an int is a
        ``StratifiedKFold`` of that many folds. An iterable of (train, test) pairs, or a
        ``PredefinedSplit``, indexes the labeled rows in their order, not all rows.

    Examples
    --------
    >>> import numpy as np
    >>> from dymo_sklearn.model_selection import SemiSupervisedSplit
    >>> y = np.array([0, 1, -1, 0, 1, -1, 0, 1])
    >>> for train, test in SemiSupervisedSplit(cv=2).split(None, y):
    ...     print(train.tolist(), test.tolist())
    [2, 4, 5, 6, 7] [0, 1, 3]
    [0, 1, 2, 3, 5] [4, 6, 7]
    """

    def __init__(self, cv=5):
        self.cv = cv

    def split(self, X, y, groups=None):
        """Yield (train, test) indices: test rows all labeled, every unlabeled row in train.

        Parameters
        ----------
        X : object
            Ignored beyond being passed on; any container ``cross_val_score`` accepts.
        y : array-like of shape (n_samples,)
            Labels, -1 for unlabeled rows.
        groups : array-like of shape (n_samples,), default=None
            Group labels, passed on for the labeled rows.

        Yields
        ------
        train, test : ndarray of int
        """
        y, labeled, groups = self._labeled(y, groups)
        unlabeled = np.setdiff1d(np.arange(len(y)), labeled)
        labeled_groups = None if groups is None else groups[labeled]
        splitter = check_cv(self.cv, y[labeled], classifier=True)
        for train, test in splitter.split(np.zeros((len(labeled), 1)), y[labeled], labeled_groups):
            extra = unlabeled
            if groups is not None:  # an unlabeled row of a tested group would leak that group
                extra = unlabeled[~np.isin(groups[unlabeled], labeled_groups[test])]
            yield np.sort(np.concatenate([labeled[train], extra])), labeled[test]

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits, that of ``cv`` on the labeled rows (and their groups)."""
        if y is None:
            return check_cv(self.cv, classifier=False).get_n_splits(X, y, groups)
        y, labeled, groups = self._labeled(y, groups)
        return check_cv(self.cv, y[labeled], classifier=True).get_n_splits(
            np.zeros((len(labeled), 1)), y[labeled], None if groups is None else groups[labeled])

    @staticmethod
    def _labeled(y, groups):
        y = column_or_1d(np.asarray(y))
        labeled = labeled_rows(y)
        labeled = np.arange(len(y)) if labeled is None else labeled
        return y, labeled, None if groups is None else np.asarray(groups)

    def __repr__(self):
        return f"{type(self).__name__}(cv={self.cv!r})"
