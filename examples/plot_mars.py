"""
MARS: experts routed by missingness
===================================

:class:`~dymo_sklearn.MARSClassifier` recovers nothing. During training it sees each sample
whole, through a random sub-pattern of its modalities and through each modality alone. A
*residual router* reads how the missing modalities shifted the sample's representation and
sends it to two of four small experts. A *feature router*, which sees only what prediction will see, learns to imitate it, and
routes alone at prediction.

Two questions a user should ask of a fitted model:

- does the feature router imitate the residual router on data it has not seen?
  :meth:`~dymo_sklearn.MARSClassifier.routing_agreement` answers it;
- which experts does each missing pattern use?
  :meth:`~dymo_sklearn.MARSClassifier.expert_usage` answers it.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from dymo_sklearn import MARSClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits
from dymo_sklearn.plotting import plot_expert_usage

X, y = make_multiview_digits(n_modalities=3, n_samples=900, background=1.0, random_state=0)
train, test = train_test_split(np.arange(len(y)), test_size=0.4, stratify=y, random_state=0)

clf = MARSClassifier(d_model=32, n_heads=2, n_layers=1, expert_hidden=64, max_epochs=20, lr=3e-3,
                     early_stopping=False, random_state=0, verbose=1)  # verbose: one line per epoch
clf.fit(X[train], y[train])
for missing in (0, 1 / 3, 2 / 3):
    X_missing = apply_missing(X[test], missing, random_state=1)
    print(f"{round(3 * missing)} of 3 views missing: accuracy {clf.score(X_missing, y[test]):.3f}")

# %%
# Imitation on held-out samples. Chance is 1/4 for the top expert; top-k compares the set of the
# two experts each router picks.
agreement = clf.routing_agreement(X[test], random_state=0)
print({name: round(value, 3) for name, value in agreement.items()})

# %%
# Expert usage per missing pattern: the mean gate weight of each expert among the test samples
# that observe exactly those views.
X_mixed = apply_missing(X[test], 1 / 3, random_state=2)
usage = clf.expert_usage(X_mixed)
ax = plot_expert_usage(usage)
ax.set_title("mean gate weight per observed pattern")
plt.show()
