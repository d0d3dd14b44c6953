"""The diffusion family's shared harness: splits, stored denoisers, sampling wiring, scoring, staleness."""

from __future__ import annotations

import pytest
import torch

from zoo.catalogue import repo_root
from zoo.diffusion import CFGGuider
from zoo.experiments import _diffbench as db
from zoo.pipeline import SHARED_STAGES, _asks_shared_denoiser


@pytest.fixture(scope="module")
def gmm() -> db.Domain:
    return db.load_domain("gmm", repo_root() / "data")


def _tiny(domain: db.Domain) -> tuple[db.Recipe, torch.nn.Module]:
    recipe = db.RECIPES["gmm"].replace(epochs=1)
    model, _ = db.train_denoiser(recipe, domain, seed=0)
    return recipe, model


def test_gmm_splits_are_disjoint_and_deterministic(gmm: db.Domain) -> None:
    again = db._load_domain_cached.__wrapped__("gmm", str(repo_root() / "data"), "cpu")
    for split in ("train", "val", "test"):
        assert torch.equal(gmm.split(split)[0], again.split(split)[0])
    assert not torch.equal(gmm.split("val")[0][:10], gmm.split("test")[0][:10])
    assert gmm.split("val")[0].shape[0] == db.GMM["n_val"]


def test_digits_has_a_validation_split_carved_from_train() -> None:
    d = db.load_domain("digits", repo_root() / "data")
    n_tr, n_val = d.split("train")[0].shape[0], d.split("val")[0].shape[0]
    assert abs(n_val / (n_tr + n_val) - 0.2) < 0.01
    assert d.to_diffusion(d.split("train")[0]).min() >= -1.0 and d.from_diffusion(torch.full((1, 64), 3.0)).max() == 1.0


def test_flat_state_round_trips(gmm: db.Domain) -> None:
    recipe, model = _tiny(gmm)
    fresh = db._architecture(recipe, gmm)
    fresh.load_state_dict(db.state_from_flat(fresh, db.flat_state(model)))
    x, t, c = torch.randn(5, 2), torch.randint(1000, (5,)), torch.randint(3, (5,))
    assert torch.equal(fresh(x, t, c), model(x, t, c))


def test_same_generator_same_samples_and_the_guider_is_the_only_difference(gmm: db.Domain) -> None:
    recipe, model = _tiny(gmm)
    a, la = db.draw(model, recipe, gmm, CFGGuider(1.0), 5, db.sample_noise(0), steps=8)
    b, _ = db.draw(model, recipe, gmm, CFGGuider(1.0), 5, db.sample_noise(0), steps=8)
    c, _ = db.draw(model, recipe, gmm, CFGGuider(3.0), 5, db.sample_noise(0), steps=8)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert la.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    # w = 0 is the conditional model itself, under DDPM and DDIM alike.
    for sampler in ("ddpm", "ddim"):
        g0, _ = db.draw(model, recipe, gmm, CFGGuider(0.0), 5, db.sample_noise(1), steps=8, sampler=sampler)
        un, _ = db.draw(model, recipe, gmm, None, 5, db.sample_noise(1), steps=8, sampler=sampler)
        torch.testing.assert_close(g0, un, atol=1e-5, rtol=0)


def test_cfg_model_fn_feeds_the_null_token_or_the_given_labels(gmm: db.Domain) -> None:
    _, model = _tiny(gmm)
    labels = torch.tensor([0, 1, 2])
    x = torch.randn(3, 2)
    cond, uncond = db.cfg_model_fn(model, labels)(x, 500)
    t = torch.full((3,), 500)
    torch.testing.assert_close(cond, model(x, t, labels), atol=1e-6, rtol=0)
    torch.testing.assert_close(uncond, model(x, t, torch.full((3,), model.null_class)), atol=1e-6, rtol=0)
    _, other = db.cfg_model_fn(model, labels, torch.tensor([2, 0, 1]))(x, 500)
    torch.testing.assert_close(other, model(x, t, torch.tensor([2, 0, 1])), atol=1e-6, rtol=0)


def test_stored_denoisers_load_and_an_edited_recipe_is_refused(gmm: db.Domain, monkeypatch: pytest.MonkeyPatch) -> None:
    model = db.shared_denoiser("gmm", 0, gmm)
    assert not any(p.requires_grad for p in model.parameters())
    x, _ = db.draw(model, db.RECIPES["gmm"], gmm, None, 50, db.sample_noise(0), steps=20)
    scorer = db.fit_scorer(gmm)
    assert scorer.score(x, torch.arange(3).repeat_interleave(50))["class_acc"] > 60  # a trained model, not noise
    monkeypatch.setitem(db.RECIPES, "gmm", db.RECIPES["gmm"].replace(epochs=126))
    with pytest.raises(ValueError, match="re-record"):
        db.shared_denoiser("gmm", 0, gmm)
    with pytest.raises(ValueError, match="seed 99"):
        monkeypatch.setitem(db.RECIPES, "gmm", db.RECIPES["gmm_cond"].replace(p_uncond=0.1))
        db.shared_denoiser("gmm", 99, gmm)


def test_the_real_data_scores_like_real_data(gmm: db.Domain) -> None:
    scorer = db.fit_scorer(gmm)
    m = scorer.score(*gmm.split("val"), reference="test")
    assert 70 < m["class_acc"] < 85 and m["fd"] < 0.02 and abs(m["diversity"] - 1) < 0.05
    # A collapsed sample (every point at its class mean) has no diversity and a large FD.
    x, y = gmm.split("val")
    means = torch.stack([x[y == k].mean(0) for k in range(3)])
    collapsed = scorer.score(means[y] + 1e-3 * torch.randn_like(x), y, reference="test")
    assert collapsed["diversity"] < 0.01 and collapsed["fd"] > 0.5


def test_an_entry_that_names_a_shared_denoiser_depends_on_the_weights() -> None:
    stage = SHARED_STAGES["baselines_diffusion"]
    assert {"reproductions/_baselines/diffusion/denoisers.pt", "reproductions/_baselines/diffusion/denoisers.json"} == set(stage.read_files)
    assert _asks_shared_denoiser({"arms": {"a": {"shared_denoiser": "digits"}}})
    assert _asks_shared_denoiser({"shared_denoiser": ["gmm", "digits"]})
    assert not _asks_shared_denoiser({"denoiser": "digits", "lr": "tuned"})


def test_sample_series_keeps_per_class_samples() -> None:
    x = torch.arange(12.0).reshape(6, 2)
    s = db.sample_series(x, torch.tensor([0, 0, 0, 1, 1, 1]), 2)
    assert s["sample_labels"] == [0.0, 0.0, 1.0, 1.0] and s["samples"][:4] == [0.0, 1.0, 2.0, 3.0]
