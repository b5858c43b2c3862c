"""PianoGAN's long 1-D convolutions (kernel 25, stride 4) as one matrix multiply each, on CPU.

oneDNN runs WaveGAN's k25/s4 layers far below the machine's matmul rate where the output
(convolution) or input (transposed convolution) is only a few positions long: the last
critic layer (16 -> 4) and the first generator layer (4 -> 16), which dominate a PianoGAN
step with its double-backward gradient penalty. The same layer written as im2col + GEMM
(`unfold` + `addmm`; transposed: GEMM + `fold`) multiplies a [batch x positions, C_in x 25]
matrix once, at close to the matmul rate, and autograd differentiates it twice as it does
any matmul. Measured per layer in `audiogan bench train` (`pianogan_layers`).

These modules subclass `nn.Conv1d` / `nn.ConvTranspose1d`: same parameters, same names,
same initialisation, so checkpoints do not change. Outputs equal the oneDNN ones to fp32
rounding (tests/train/test_models_wgan.py). On other devices (cuDNN) and for the shapes
where oneDNN is as fast, they are the parent class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Where the GEMM form wins on CPU (`bench train` measures both per layer): short sides.
GEMM_MAX_POSITIONS = 4   # conv: output length; transposed conv: input length
GEMM_MAX_IN_CHANNELS = 4  # a conv over few channels (the critic's first, 3 -> 2d)


class GemmConv1d(nn.Conv1d):
    """`nn.Conv1d` (groups 1, dilation 1, zero padding) computed as unfold + one GEMM."""

    def use_gemm(self, x: torch.Tensor) -> bool:
        if x.device.type != "cpu" or self.groups != 1 or self.dilation != (1,):
            return False
        length = (x.shape[-1] + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1
        return length <= GEMM_MAX_POSITIONS or self.in_channels <= GEMM_MAX_IN_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.use_gemm(x):
            return super().forward(x)
        (k,), (s,), (p,) = self.kernel_size, self.stride, self.padding
        b, c, _ = x.shape
        cols = F.pad(x, (p, p)).unfold(2, k, s)                    # [B, C, L_out, K]
        length = cols.shape[2]
        cols = cols.permute(0, 2, 1, 3).reshape(b * length, c * k)
        w = self.weight.reshape(self.out_channels, c * k).t()
        y = cols @ w if self.bias is None else torch.addmm(self.bias, cols, w)
        return y.view(b, length, self.out_channels).transpose(1, 2)


class GemmConvTranspose1d(nn.ConvTranspose1d):
    """`nn.ConvTranspose1d` (groups 1, dilation 1) computed as one GEMM + fold (col2im)."""

    def use_gemm(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and self.groups == 1 and self.dilation == (1,)
                and x.shape[-1] <= GEMM_MAX_POSITIONS)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or not self.use_gemm(x):
            return super().forward(x, output_size)
        (k,), (s,), (p,), (op,) = (self.kernel_size, self.stride, self.padding,
                                   self.output_padding)
        b, c_in, n = x.shape
        w = self.weight.reshape(c_in, self.out_channels * k).t()   # [C_out*K, C_in]
        cols = torch.matmul(w, x)                                  # [B, C_out*K, L_in]
        full = (n - 1) * s + k
        y = F.fold(cols, (1, full), (1, k), stride=(1, s))[:, :, 0]   # [B, C_out, full]
        y = y[:, :, p:p + full - 2 * p + op]
        if op > 0 and y.shape[-1] < full - 2 * p + op:  # output padding past the last tap
            y = F.pad(y, (0, full - 2 * p + op - y.shape[-1]))
        return y if self.bias is None else y + self.bias[:, None]
