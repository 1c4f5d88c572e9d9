"""roadmap.data.augment: per-image draws, reproducibility, and exactness against torchvision applied per image."""

import pytest
import torch
from torchvision.transforms import v2

from roadmap.data import augment as A

F = v2.functional


def gen(seed):
    """A CPU generator seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


def images(n, c=3, size=32, seed=0):
    """n random uint8 images (n, c, size, size)."""
    return torch.randint(0, 256, (n, c, size, size), generator=gen(seed), dtype=torch.uint8)


def copies(n, c=3, size=32):
    """n identical copies of one structured uint8 image (so every op changes it visibly)."""
    ramp = torch.arange(size * size).reshape(size, size) * 7 % 256
    img = torch.stack([(ramp + 40 * k) % 256 for k in range(c)]).to(torch.uint8)
    return img.expand(n, -1, -1, -1).contiguous()


def float_batch(n, size=32, seed=0):
    """n normalized-looking float32 images."""
    return torch.randn(n, 3, size, size, generator=gen(seed))


def distinct(batch):
    """Number of distinct images in a batch."""
    return len({tuple(b.flatten().tolist()) for b in batch})


FUNCS = {
    "crop": lambda x, g: A.random_crop(x, 4, g),
    "flip": lambda x, g: A.random_flip(x, g),
    "randaugment": lambda x, g: A.rand_augment(x, 2, 9, g),
}


@pytest.mark.parametrize("name", list(FUNCS))
def test_identical_images_get_own_draws_and_seed_reproduces(name):
    x = copies(64)
    out = FUNCS[name](x, gen(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert distinct(out) >= 2 if name == "flip" else distinct(out) >= 10
    assert torch.equal(out, FUNCS[name](x, gen(1)))
    assert not torch.equal(out, FUNCS[name](x, gen(2)))


def test_erasing_identical_images_get_own_boxes_and_seed_reproduces():
    x = torch.ones(64, 3, 32, 32)
    out = A.random_erasing(x, 1.0, gen(1))
    assert distinct(out) >= 50
    assert torch.equal(out, A.random_erasing(x, 1.0, gen(1)))
    assert not torch.equal(out, A.random_erasing(x, 1.0, gen(2)))


def test_rand_augment_draws_many_ops_per_round():
    _, params = A.rand_augment(copies(256), 2, 9, gen(0), return_params=True)
    assert len(params) == 2
    for ops, negative in params:
        assert len(ops.unique()) == len(A._OPS)  # 14 ops, 256 images: all occur
        assert 0.3 < negative.float().mean() < 0.6  # about half of the signed ops (9 of 14) negative
        assert not negative[~A._SIGNED[ops]].any()
    assert not torch.equal(params[0][0], params[1][0])


@pytest.mark.parametrize("c", [1, 3])
def test_random_crop_equals_torchvision_crop_of_padded_image(c):
    x = images(32, c)
    out, (top, left) = A.random_crop(x, 4, gen(3), return_params=True)
    assert 0 <= top.min() and top.max() <= 8 and len(top.unique()) > 3 and len(left.unique()) > 3
    for i in range(len(x)):
        padded = F.pad(x[i], [4] * 4, padding_mode="reflect")
        assert torch.equal(out[i], F.crop(padded, int(top[i]), int(left[i]), 32, 32))
    assert A.random_crop(x, 0, gen(3)) is x


def test_random_flip_equals_torchvision_flip_where_masked():
    x = images(32, 3)
    out, mask = A.random_flip(x, gen(4), return_params=True)
    assert 0 < mask.sum() < 32
    for i in range(len(x)):
        assert torch.equal(out[i], F.horizontal_flip(x[i]) if mask[i] else x[i])


def test_random_flip_fraction():
    _, mask = A.random_flip(torch.zeros(4096, 1, 2, 2, dtype=torch.uint8), gen(5), return_params=True)
    assert 0.45 <= mask.float().mean() <= 0.55
    assert not A.random_flip(torch.zeros(64, 1, 2, 2, dtype=torch.uint8), gen(5), p=0.0, return_params=True)[1].any()


@pytest.mark.parametrize("c, n", [(3, 512), (1, 256)])
def test_rand_augment_equals_torchvision_per_image(c, n):
    x = images(n, c, seed=c)
    out, params = A.rand_augment(x, 2, 9, gen(6), return_params=True)
    seen = set()
    for i in range(n):
        img = x[i]
        for ops, negative in params:
            op = A._OPS[int(ops[i])]
            seen.add((op, bool(negative[i])))
            magnitude = A.op_magnitude(op, 9, bool(negative[i]), 32, 32)
            img = v2.RandAugment()._apply_image_or_video_transform(
                img, op, magnitude, interpolation=v2.InterpolationMode.NEAREST, fill={"others": None})
        assert torch.equal(out[i], img), (i, [A._OPS[int(o[i])] for o, _ in params])
    assert len(seen) == 23  # 14 ops, 9 of them signed (both signs)
    assert A.op_magnitude("Rotate", 9, True, 32, 32) == pytest.approx(-9.0)
    assert A.op_magnitude("Posterize", 9, True, 32, 32) == 7.0


def test_random_erasing_equals_torchvision_erase_per_image():
    x = float_batch(64)
    out, (top, left, h, w) = A.random_erasing(x, 0.5, gen(7), value=-3.0, return_params=True)
    erased = h > 0
    assert 10 < erased.sum() < 54
    assert (top + h <= 32).all() and (left + w <= 32).all()
    for i in range(len(x)):
        want = F.erase(x[i], int(top[i]), int(left[i]), int(h[i]), int(w[i]), torch.tensor(-3.0)) if erased[i] \
            else x[i]
        assert torch.equal(out[i], want)


def test_random_erasing_statistics():
    scale, size = (0.02, 0.33), 128
    x = torch.zeros(512, 3, size, size)
    out, (_, _, h, w) = A.random_erasing(x, 1.0, gen(8), scale=scale, value=1.0, return_params=True)
    erased = out[:, 0].sum((1, 2))
    assert (erased > 0).float().mean() >= 0.99
    assert torch.equal(erased, (h * w).float())
    frac = erased[erased > 0] / size ** 2
    assert frac.min() >= scale[0] * 0.9 and frac.max() <= scale[1] * 1.05  # rounding of h and w
    assert frac.max() > 0.25 and frac.min() < 0.05
    assert torch.equal(A.random_erasing(x, 0.0, gen(8)), x)


def test_random_erasing_takes_first_fitting_attempt():
    # with scale (0.5, 0.9) about 2 in 3 attempts do not fit: one attempt would erase ~1/3, ten erase nearly all
    x = torch.zeros(512, 1, 32, 32)
    out, (_, _, h, w) = A.random_erasing(x, 1.0, gen(13), scale=(0.5, 0.9), value=1.0, return_params=True)
    erased = h > 0
    assert 0.9 <= erased.float().mean() < 1.0
    assert (h < 32).all() and (w < 32).all()
    assert torch.equal(out[:, 0].sum((1, 2)), (h * w).float())
    assert (h * w)[erased].min() >= 0.45 * 32 ** 2


def test_batch_augment_normalizes_and_reproduces():
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    x = images(64, 3)
    plain = A.BatchAugment(flip=False, mean=mean, std=std)(x, gen(9))
    want = (x.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert plain.dtype == torch.float32 and plain.shape == x.shape
    torch.testing.assert_close(plain, want)
    aug = A.BatchAugment(crop_padding=4, flip=True, randaugment=(2, 9), erasing=0.25, mean=mean, std=std)
    out = aug(x, gen(10))
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.equal(out, aug(x, gen(10)))
    assert not torch.equal(out, aug(x, gen(11)))
    assert not torch.equal(out, plain)


def test_batch_augment_one_channel_expanded():
    x = images(32, 1).expand(-1, 3, -1, -1)  # as the trainer feeds grayscale data
    aug = A.BatchAugment(crop_padding=2, randaugment=(2, 9), erasing=0.5, mean=(0.5,) * 3, std=(0.5,) * 3)
    out = aug(x, gen(12))
    assert out.shape == (32, 3, 32, 32) and torch.equal(out, aug(x, gen(12)))
    gray = A.BatchAugment(crop_padding=2, randaugment=(2, 9), mean=(0.5,), std=(0.5,))
    assert gray(images(32, 1), gen(12)).shape == (32, 1, 32, 32)
