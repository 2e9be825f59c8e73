"""SemiSupervisedSplit: cross-validation that keeps unlabeled rows (label -1) out of every test set."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold, cross_val_score

from dymo_sklearn.model_selection import SemiSupervisedSplit

from helpers import tiny_classifier


def test_unlabeled_rows_train_every_fold_and_test_none():
    """Catches an unlabeled row in a test set, one missing from a training set, or labeled rows
    tested twice or never."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    y[rng.random(90) < 0.4] = -1
    unlabeled = np.flatnonzero(y == -1)
    tested = []
    for train, test in SemiSupervisedSplit(cv=3).split(None, y):
        assert not np.isin(test, unlabeled).any()
        assert np.isin(unlabeled, train).all()
        assert not np.intersect1d(train, test).size
        tested.extend(test)
    assert sorted(tested) == sorted(np.flatnonzero(y != -1))
    assert SemiSupervisedSplit(cv=3).get_n_splits(None, y) == 3


def test_the_inner_splitter_sees_only_labeled_rows_and_their_groups():
    """Catches groups or labels misaligned with the labeled rows passed to ``cv``, and an
    unlabeled row of a tested group (another record of a tested patient) put in training."""
    y = np.array([0, 1, -1, 0, 1, -1, 0, 1, 0, 1, -1])
    groups = np.array([0, 0, 9, 1, 1, 9, 2, 2, 3, 3, 1])
    splitter = SemiSupervisedSplit(cv=GroupKFold(2))
    for train, test in splitter.split(None, y, groups):
        assert not set(groups[test]) & set(groups[train])
        assert {2, 5} <= set(train)  # group 9 has no labeled row: it is never tested
    assert splitter.get_n_splits(None, y, groups) == 2
    from sklearn.model_selection import LeaveOneGroupOut

    assert SemiSupervisedSplit(LeaveOneGroupOut()).get_n_splits(None, y, groups) == 4  # 9 only unlabeled
    # stratified on the labeled rows: each test fold holds both classes
    for _, test in SemiSupervisedSplit(cv=StratifiedKFold(2)).split(None, y):
        assert set(y[test]) == {0, 1}


def test_cross_validation_with_unlabeled_rows_matches_hand_cut_folds(image_table_data):
    """cross_val_score with the splitter equals fitting on each training set (unlabeled rows
    included) and scoring the labeled test rows: what a user would do by hand."""
    X, y = image_table_data
    y = y.copy()
    y[::4] = -1
    splitter = SemiSupervisedSplit(cv=2)
    estimator = tiny_classifier(max_epochs=2)
    scores = cross_val_score(estimator, X, y, cv=splitter)
    by_hand = []
    for train, test in splitter.split(X, y):
        model = clone(estimator).fit({k: v[train] for k, v in X.items()}, y[train])
        by_hand.append(np.mean(model.predict({k: v[test] for k, v in X.items()}) == y[test]))
    np.testing.assert_allclose(scores, by_hand)
    search = GridSearchCV(estimator, {"max_epochs": [1, 2]}, cv=splitter).fit(X, y)
    assert -1 not in search.best_estimator_.classes_


@pytest.mark.parametrize("cv", [3, StratifiedKFold(3, shuffle=True, random_state=0)])
def test_no_unlabeled_rows_is_plain_cross_validation(cv):
    y = np.repeat([0, 1, 2], 10)
    expected = list(StratifiedKFold(3).split(np.zeros((30, 1)), y)) if cv == 3 else \
        list(cv.split(np.zeros((30, 1)), y))
    for (train, test), (e_train, e_test) in zip(SemiSupervisedSplit(cv).split(None, y), expected):
        np.testing.assert_array_equal(test, e_test)
        np.testing.assert_array_equal(train, e_train)


def test_a_pipeline_passes_unlabeled_rows_to_the_estimator(image_table_data):
    """Catches a Pipeline step dropping or reordering the -1 rows: the pipeline's recoverer must
    be the one fitted on every row, as the estimator alone fits it."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from dymo_sklearn import MultimodalDict

    X, y = image_table_data
    y = y.copy()
    y[1::2] = -1
    scale = FunctionTransformer(lambda data: MultimodalDict(**{k: v * 1.0 for k, v in data.items()}))
    pipeline = make_pipeline(scale, tiny_classifier()).fit(X, y)
    alone = tiny_classifier().fit(X, y)
    np.testing.assert_array_equal(pipeline[-1].recoverer_.statistics_, alone.recoverer_.statistics_)
    flat = np.concatenate([v.reshape(len(v), -1) for v in X.values()], axis=1)
    np.testing.assert_allclose(pipeline[-1].recoverer_.statistics_, np.nanmean(flat, axis=0), rtol=1e-5)
    np.testing.assert_array_equal(pipeline.predict_proba(X), alone.predict_proba(X))
