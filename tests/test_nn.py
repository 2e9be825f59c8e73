"""The fusion transformer's inference shortcut and the network's per-version encoding
(dymo_sklearn/nn/backbone.py, dymo_sklearn/nn/dymo.py)."""

import pytest
import torch

from dymo_sklearn.nn.backbone import FusionTransformer
from dymo_sklearn.nn.dymo import DyMoNetwork


def _fusion(n_layers):
    # Weight initialisation draws from the global generator: fork it so its state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fusion = FusionTransformer([0, 0, 1, 2, 2], n_modalities=3, d_model=8, n_heads=2, n_layers=n_layers,
                                   dropout=0.0)
        tokens = torch.randn(6, 5, 8)
    return fusion, tokens


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_cls_only_last_block_equals_computing_every_token(n_layers):
    """Catches a wrong split of the query and key/value weights in the [CLS]-only last block."""
    fusion, tokens = _fusion(n_layers)
    present = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        expected = fusion.train()(tokens, present)  # training runs every token; no dropout here
        fused = fusion.eval()(tokens, present)
    torch.testing.assert_close(fused, expected)


def test_absent_tokens_are_excluded_as_attention_keys():
    """Catches a fusion that attends to an absent modality's (zeroed) tokens: the output must be
    that of a transformer which never had those tokens at all, and must not depend on how many
    absent tokens there are."""
    full, tokens = _fusion(2)  # tokens of modalities 0, 0, 1, 2, 2
    short = FusionTransformer([0, 0, 1], n_modalities=3, d_model=8, n_heads=2, n_layers=2, dropout=0.0)
    state = {key: value for key, value in full.state_dict().items() if key != "token_modality"}
    short.load_state_dict({**state, "token_modality": short.token_modality})
    present = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.bool)  # modality 2 absent
    with torch.no_grad():
        fused = full.eval()(tokens[:3], present)
        without = short.eval()(tokens[:3, :3], present)
    torch.testing.assert_close(fused, without)


def _network():
    with torch.random.fork_rng(devices=[]):
        return DyMoNetwork(modality_names=["a", "b", "c"], modality_shapes=[(3,)] * 3,
                           encoder_specs=["vector"] * 3, n_classes=2, d_model=8, n_heads=2, n_layers=1,
                           projection_dim=4, dropout=0.0, entry_dropout=0.0).eval()


def test_each_version_is_encoded_once_and_only_where_it_exists():
    """Catches encoding a complete modality twice, or encoding the zeros of a missing one."""
    network = _network()
    nan = float("nan")
    inputs = {"a": torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),  # complete in both rows
              "b": torch.tensor([[nan, nan, nan], [1.0, nan, 2.0]]),  # missing, then partial
              "c": torch.tensor([[nan, nan, nan], [nan, nan, nan]])}  # missing in both rows
    recovered = {"a": inputs["a"], "b": torch.tensor([[7.0, 8.0, 9.0], [1.0, 3.0, 2.0]]), "c": torch.ones(2, 3)}
    with torch.no_grad():
        observed, filled, present, candidates = network.encode_versions(inputs, recovered)
    # a: 2 rows as observed; b: 1 observed row, 2 recovered; c: 2 recovered rows.
    assert dict(network.pass_counts) == {"encoder_0": 2, "encoder_1": 3, "encoder_2": 2}
    assert present.tolist() == [[True, False, False], [True, True, False]]
    assert candidates.tolist() == [[False, True, True], [False, True, True]]
    assert torch.equal(filled[:, 0], observed[:, 0])
    assert torch.equal(observed[0, 1], torch.zeros(8)) and torch.equal(observed[:, 2], torch.zeros(2, 8))
    ones = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(filled[1, 1], network.encoders[1](recovered["b"][1:], ones)[0, 0])
        torch.testing.assert_close(observed[1, 1], network.encoders[1](
            torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[True, False, True]]))[0, 0])
