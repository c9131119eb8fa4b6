"""Tiny real models built from configs and mini datasets in the real on-disk layouts (tests + demo).

Nothing here downloads anything: models are built from configs with real library classes and installed into
an offline Hugging Face cache under the real default ids; datasets are cut from photos that installed
packages ship. ``discl.tiny.digits`` is the digits world: small models in the same architectures whose
committed weights were trained here on real handwritten digits (docs/digits-world.md).
"""

from discl.tiny.datasets import (make_mini_folder, make_mini_imagenet_lt, make_mini_iwildcam,  # noqa: F401
                                 write_mini_folder_csv)
from discl.tiny.models import TINY_OPEN_CLIP, install_tiny_models  # noqa: F401
from discl.tiny.digits import DIGITS_OPEN_CLIP, install_digits_models, make_digits_lt  # noqa: F401
