r"""One elastic bit-width supernet (EQ-Net, :mod:`zoo.quant.elastic_quantization`) against separately
quantisation-aware-trained models at each width, on the family's shared compression harness.

Every arm of a seed starts from the same pretrained dense MLP (``pretrain_epochs``) and then trains
for the same ``epochs`` (the same number of optimizer steps, the same batch order and Adam at the
family's tuned lr):

* ``eq_b<b>``: the *one* weight-sharing supernet (sandwich rule over the widths {2, 3, 4, 8}),
  exported at :math:`b` bits. Its training does not depend on :math:`b` (the width sampler is
  seeded from the seed), so the four ``eq_b*`` arms of a seed evaluate the same supernet;
* ``qat_b<b>``: a model trained by QAT (:mod:`zoo.quant.qat`) at :math:`b` bits only;
* ``dense``: the float model fine-tuned for the same epochs (the size reference).

The claims compare, seed by seed, the exported supernet's test accuracy with the separately
trained model's at each width (``eq_b<b>.test_acc`` minus ``qat_b<b>.test_acc``).
"""

from __future__ import annotations

from zoo.experiments._compressbench import compressbench
import zoo.quant.elastic_quantization  # noqa: F401  (registers "eqnet")
import zoo.quant.qat  # noqa: F401  (registers "qat")

EXPERIMENT = compressbench("elastic_quantization_networks")
