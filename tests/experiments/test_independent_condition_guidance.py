"""The ICG/TSG experiment: arms share the noise and the step budget; CFG arms sample the null-token
model, ICG/TSG arms the model trained without one; ICG at w = 0 is that model's unguided arm; each
option (method, resampling, TSG's noise scale, sampler) changes the samples; the quick run works."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments import independent_condition_guidance as exp
from zoo.experiments._diffbench import RECIPES
from zoo.harness import JobContext

ENTRY = "independent_condition_guidance"


def _ctx(cfg):
    env = quick_env()
    return JobContext(env, None, None, exp._per_seed(cfg, 0, env, None, None))


def test_arm_names_round_trip():
    cfg, _ = spec_budget(ENTRY, quick=False)
    for arm in exp.arms(cfg):
        if arm.endswith("_real"):
            continue
        d, sampler, method, w = exp.parse_arm(arm)
        assert exp.arm_name(d, method, w, sampler) == arm


def test_models_and_wiring():
    cfg, _ = spec_budget(ENTRY)
    ctx = _ctx(cfg)
    # the CFG model has a null token trained, the ICG/TSG model none
    assert RECIPES["digits"].p_uncond > 0 and RECIPES["digits_cond"].p_uncond == 0
    assert RECIPES["digits"].replace(p_uncond=0.0) == RECIPES["digits_cond"]

    def s(arm, **kw):
        return exp.sample_arm({**cfg, **kw}, arm, 0, ctx)[0]

    cond0 = s("digits_cond_w0")
    torch.testing.assert_close(s("digits_icg_w0"), cond0)  # w = 0: the conditional model, same noise
    torch.testing.assert_close(s("digits_tsg_w0"), cond0)
    assert not torch.allclose(s("digits_cfg_w0"), cond0)  # another model
    icg = s("digits_icg_w2")
    assert not torch.allclose(icg, cond0)
    assert not torch.allclose(icg, s("digits_icg_once_w2"))  # the resampling option reaches the sampler
    assert not torch.allclose(icg, s("digits_cfg_w2"))
    tsg = s("digits_tsg_w2")
    assert not torch.allclose(tsg, s("digits_tsg_w2", tsg_noise_scale=1.0))  # s reaches the sampler
    torch.testing.assert_close(s("digits_tsg_w2", tsg_noise_scale=0.0), cond0, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(s("digits_ddim_icg_w2"), icg)  # the sampler option
    # the same noise stream and budget: repeated calls are identical
    torch.testing.assert_close(s("digits_icg_w2"), icg)


def test_quick_run(tmp_path):
    quick_run_metrics(ENTRY, tmp_path / "quick", workers=1)
