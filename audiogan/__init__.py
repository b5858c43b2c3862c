"""audiogan: train audio GANs (PianoGAN, SpectoGAN) with WGAN-GP on Ray, and keep them out of mode collapse."""

__version__ = "0.1.0"
