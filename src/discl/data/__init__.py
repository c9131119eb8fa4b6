"""Dataset readers: WILDS iWildCam, ImageNet-LT lists, and the curriculum training tables."""
