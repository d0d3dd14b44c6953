"""Learning rules that are not an optimizer step: networks trained without end-to-end back-propagation.

One module per method, named after it; each gives a model (``nn.Module``), the training rule as
plain functions over mini-batches, and prediction. Import from the module
(``from zoo.learning_rules.noprop import NoPropDT``): this file imports none of them, so an
experiment depends on the module it uses alone.

* :mod:`zoo.learning_rules.noprop`: NoProp-DT (Li, Teh & Pascanu 2025), blocks that each learn to
  denoise a noisy label embedding;
* :mod:`zoo.learning_rules.forward_forward`: Forward-Forward (Hinton 2022), layer-local goodness
  of positive vs negative data;
* :mod:`zoo.learning_rules.mono_forward`: Mono-Forward (Gong, Li & Abdulla 2025), layer-local
  cross-entropy through a projection matrix per layer;
* :mod:`zoo.learning_rules.instant_update`: back-propagation that updates each layer as soon as its
  gradient is known, the error then passing through the updated weights (our reading of an
  underspecified abstract).
"""

__all__: list[str] = []
