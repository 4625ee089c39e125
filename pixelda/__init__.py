"""pixelda: pixel-level unsupervised domain adaptation (Bousmalis et al. 2017) in PyTorch."""

__version__ = "0.1.0"
