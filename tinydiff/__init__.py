"""tinydiff: denoising diffusion models (DDPM, DDIM, improved DDPM) on the tinydiff autograd."""

__version__ = "0.1.0"
