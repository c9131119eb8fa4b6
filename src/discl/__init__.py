"""DisCL: synthetic-to-real data curricula from image-guided diffusion (ICCV 2025), re-implemented."""

__version__ = "0.1.0"
