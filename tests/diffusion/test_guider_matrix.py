"""Every guider of zoo.diffusion under every sampler (a registry the test derives from the package).

Each class in a ``zoo.diffusion`` module that has a ``guide`` method must appear in :data:`GUIDERS`
with a factory of its guidance strength: a new guider without one fails
:func:`test_every_guider_is_registered`. Each runs under DDPM, DDIM (eta 0 and 1), with and without
the Langevin corrector; a strength of 0 is the conditional model's sampling and a positive one
moves away from it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

import pytest
import torch

import zoo.diffusion
from zoo.diffusion.ddim import DDIMScheduler
from zoo.diffusion.ddpm import DDPMScheduler
from zoo.diffusion.guidance import CFGGuider, Guider, sample
from zoo.diffusion.langevin import LangevinCorrector

GUIDERS: dict[str, Callable[[float], Guider]] = {
    "zoo.diffusion.guidance.CFGGuider": lambda w: CFGGuider(w),
}
SAMPLERS = {
    "ddpm": lambda: DDPMScheduler(100),
    "ddim_eta0": lambda: DDIMScheduler(100, eta=0.0),
    "ddim_eta1": lambda: DDIMScheduler(100, eta=1.0),
}


def _guider_classes() -> list[str]:
    out = []
    for info in pkgutil.iter_modules(zoo.diffusion.__path__):
        mod = importlib.import_module(f"zoo.diffusion.{info.name}")
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__ and callable(getattr(cls, "guide", None)) and not name.startswith("_") \
                    and cls is not Guider and not getattr(cls, "_is_protocol", False):
                out.append(f"{mod.__name__}.{name}")
    return sorted(out)


def test_every_guider_is_registered() -> None:
    found = _guider_classes()
    assert "zoo.diffusion.guidance.CFGGuider" in found
    missing = sorted(set(found) - set(GUIDERS))
    assert not missing, f"add a factory for {missing} to GUIDERS in {__file__}"


def _cond(x: torch.Tensor, t: int) -> torch.Tensor:
    return 0.5 * x + 0.1


def _pair(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _cond(x, t), 0.4 * x - 0.2


@pytest.mark.parametrize("corrector", [None, LangevinCorrector(snr=0.1)], ids=["plain", "langevin"])
@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("guider", list(GUIDERS))
def test_guider_under_sampler(guider: str, sampler: str, corrector) -> None:
    sched = SAMPLERS[sampler]()
    sched.set_timesteps(10)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed
    make = GUIDERS[guider]
    out = sample(sched, _pair, x, guider=make(2.0), corrector=corrector, progress=False, generator=gen(1))
    zero = sample(sched, _pair, x, guider=make(0.0), corrector=corrector, progress=False, generator=gen(1))
    cond = sample(sched, _cond, x, corrector=corrector, progress=False, generator=gen(1))
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(zero, cond, atol=1e-6, rtol=0)
    assert not torch.allclose(out, cond)
