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


def test_seed_addressed_labels_follow_the_frequencies_and_not_the_batch():
    from audiogan.latent import labels_for_seeds

    probs = [0.5, 0.0, 0.3, 0.2]
    seeds = list(range(1000, 3000))
    y = labels_for_seeds(seeds, probs)
    assert y.dtype == torch.int64 and torch.equal(labels_for_seeds(seeds[7:8], probs), y[7:8])
    counts = torch.bincount(y, minlength=4).float() / len(seeds)
    assert counts[1] == 0                                    # a class never seen in train
    assert torch.allclose(counts, torch.tensor(probs), atol=0.04)
    # the label is not a function of the seed's z (its own stream)
    z0 = latents_for_seeds(seeds, 1)[:, 0]
    assert abs(float(torch.corrcoef(torch.stack([z0, y.float()]))[0, 1])) < 0.1
