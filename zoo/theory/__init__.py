"""Closed-form and numerical theory of learning dynamics, one module per paper.

* :mod:`zoo.theory.deep_linear` - exact mode dynamics of deep linear networks
  (Saxe, McClelland & Ganguli, ICLR 2014).

Modules are imported on demand (``from zoo.theory.deep_linear import mode_strength``) so that
importing the package stays cheap.
"""
