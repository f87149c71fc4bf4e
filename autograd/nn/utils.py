"""torch.nn.utils's gradient clipping, under the same name (it lives in autograd.optim)."""
from autograd.optim.clip import clip_grad_norm_

__all__ = ["clip_grad_norm_"]
