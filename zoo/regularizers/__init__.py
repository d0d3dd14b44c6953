"""Training regularisers that are not a loss on the logits: reparametrisations, input mixing, feature dropout.

One module per method, named after it; import from the module (``zoo.regularizers.<module>``).
"""
