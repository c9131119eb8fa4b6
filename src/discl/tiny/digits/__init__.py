"""The digits world: small models in the production architectures, trained on real handwritten digits.

``install_digits_models(hf_home)`` installs the committed weights under the real ids (the SDXL refiner, the
transformers CLIP, an open_clip model ``discl-digits-clip``); ``make_digits_lt(root)`` writes the long-tailed
digits ImageFolder root. ``scripts/train_digits_world.py`` retrains the weights. See docs/digits-world.md.
"""

from discl.tiny.digits.data import make_digits_lt  # noqa: F401
from discl.tiny.digits.install import (DIGITS_OPEN_CLIP, digits_open_clip_weights,  # noqa: F401
                                       install_digits_models)
