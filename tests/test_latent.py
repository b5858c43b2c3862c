import torch

from audiogan.latent import interpolate, latents_for_seeds


def test_seed_addressed_latents_independent_of_batch():
    a = latents_for_seeds([3], 100)
    b = latents_for_seeds([0, 1, 2, 3, 4], 100)
    assert torch.equal(a[0], b[3])
    assert a.min() >= -1 and a.max() <= 1 and a.shape == (1, 100)
    assert not torch.equal(b[0], b[1])


def test_interpolate_endpoints():
    z = latents_for_seeds([1, 2], 8)
    line = interpolate(z[0], z[1], 5)
    assert line.shape == (5, 8)
    assert torch.allclose(line[0], z[0]) and torch.allclose(line[-1], z[1])
