"""Images through TorchCodec (issue 32): the pixels are those torchvision.io gave before the move, recorded from it
(torchvision 0.29.1, decode_image / decode_jpeg with mode RGB, encode_jpeg, transforms.v2's jpeg) on the committed
files in tests/data/images (written once by its make.py), not compared with torchvision at test time.

Where TorchCodec does otherwise, the project follows it and says so here: a JPEG's EXIF orientation is applied (an
image comes out as a viewer shows it, on the CPU and, by nvJPEG, on the GPU alike; torchvision ignored the tag unless
asked), a 16-bit PNG becomes uint8 (torchvision gave uint16), and a batch of the device decoder without any JPEG or
with a format only PIL reads is decoded (torchvision's path raised on the first and left the second out)."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from roadmap.data import corruptions
import roadmap.data as data_lib

IMAGES = Path(__file__).parent / "data" / "images"

# file: (sum of all values, sha256 of the uint8 (3, 40, 52) tensor's bytes (first 16 hex digits), the pixel at row
# 17, column 23), as torchvision.io decoded them
BEFORE = {
    "rgb.jpg": (791818, "b3682c0a97a3d202", [111, 122, 124]),
    "progressive.jpg": (791841, "caff0f52386aff60", [124, 123, 129]),
    "gray.jpg": (791793, "02eb64640adc60a1", [119, 119, 119]),  # one channel -> three equal ones
    "cmyk.jpg": (791990, "acfeac47433eb795", [128, 110, 123]),
    "rgb.png": (792002, "0a935e75b0ef70e0", [128, 116, 123]),
    "rgba.png": (792002, "0a935e75b0ef70e0", [128, 116, 123]),  # alpha dropped: rgb.png's pixels
    "gray.png": (791778, "7c208b4253001928", [120, 120, 120]),
    "palette.png": (791410, "15ea8918d5d116ff", [150, 101, 125]),
    "rgb.bmp": (792002, "0a935e75b0ef70e0", [128, 116, 123]),  # through PIL, which both libraries leave BMP to
}
# corrupt(x, "jpeg", severity) of the batch made by `photos` below: (sum, sha256 of the bytes), RGB and one-channel
JPEG_CORRUPTION_BEFORE = {
    1: ((1561598, "0d838e5d96502948"), (519053, "2002ee20d05497c0")),
    2: ((1562680, "5352d2e7979b462c"), (518968, "00023bf1e5fc417e")),
    3: ((1560421, "b43da5457a06c693"), (518690, "9de59a5d4492d0f3")),
}


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().cpu().numpy().tobytes()).hexdigest()[:16]


def decoded(name: str) -> torch.Tensor:
    path = IMAGES / name
    return data_lib.decode(data_lib.read_file(str(path)), str(path))


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_images_decode_to_the_pixels_torchvision_gave(name):
    image = decoded(name)
    total, digest, pixel = BEFORE[name]
    assert image.dtype == torch.uint8 and image.shape == (3, 40, 52)
    assert (int(image.long().sum()), sha(image), image[:, 17, 23].tolist()) == (total, digest, pixel)


def test_a_jpegs_exif_orientation_is_applied():
    """exif_rotated.jpg is rgb.jpg's pixels with Orientation 6 (turn 90 degrees clockwise to show): it comes out
    turned, 52 x 40 (torchvision gave rgb.jpg's 40 x 52 pixels, the tag ignored)."""
    upright = decoded("exif_rotated.jpg")
    assert upright.shape == (3, 52, 40)
    assert torch.equal(upright, torch.rot90(decoded("rgb.jpg"), k=-1, dims=(1, 2)))
    assert upright[:, 0, -1].tolist() == [19, 23, 26]  # rgb.jpg's top-left pixel (BEFORE) is now top-right


def test_a_16_bit_png_becomes_uint8(tmp_path):
    values = (np.arange(40 * 52).reshape(40, 52) * 30).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # PNG is lossless: these are the file's values
    image = data_lib.decode(data_lib.read_file(str(tmp_path / "deep.png")), str(tmp_path / "deep.png"))
    assert image.dtype == torch.uint8 and image.shape == (3, 40, 52)
    expected = torch.from_numpy((values / 257).round().astype(np.uint8))
    assert torch.equal(image[0], expected) and torch.equal(image[1], expected) and torch.equal(image[2], expected)


def test_the_device_decoder_gives_the_workers_pixels_for_every_format_on_the_cpu():
    names = sorted(BEFORE) + ["exif_rotated.jpg"]
    images, problems = data_lib.decode_batch([data_lib.read_file(str(IMAGES / n)) for n in names], "cpu")
    assert problems == [""] * len(names)
    for name, image in zip(names, images):
        assert torch.equal(image, decoded(name)), name
    # no JPEG in the batch at all (torchvision's batched decode_jpeg raised on its empty list)
    images, problems = data_lib.decode_batch([data_lib.read_file(str(IMAGES / "rgb.png"))], "cpu")
    assert problems == [""] and sha(images[0]) == BEFORE["rgb.png"][1]


def photos() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    return (torch.stack([yy, xx, (yy + xx) / 2]) * 200 + torch.rand(4, 3, 32, 32, generator=g) * 55).to(torch.uint8)


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_the_jpeg_corruption_gives_the_pixels_torchvision_gave(severity):
    x = photos()
    (rgb_sum, rgb_sha), (gray_sum, gray_sha) = JPEG_CORRUPTION_BEFORE[severity]
    rgb = corruptions.corrupt(x, "jpeg", severity)
    assert rgb.shape == x.shape and rgb.dtype == torch.uint8
    assert (int(rgb.long().sum()), sha(rgb)) == (rgb_sum, rgb_sha)
    gray = corruptions.corrupt(x[:, :1], "jpeg", severity)  # one channel stays one channel
    assert gray.shape == (4, 1, 32, 32) and (int(gray.long().sum()), sha(gray)) == (gray_sum, gray_sha)


def test_the_loader_benchmarks_jpegs_are_the_bytes_torchvision_wrote(tmp_path):
    from roadmap.bench.loaders import jpeg_tree

    root = jpeg_tree(tmp_path, 3)
    files = sorted((root / "train").rglob("*.jpg"))
    assert [(f.relative_to(root).as_posix(), f.stat().st_size, hashlib.sha256(f.read_bytes()).hexdigest()[:16])
            for f in files] == [("train/c0/0.jpg", 100220, "7ed45ba6294b3934"),
                                ("train/c1/1.jpg", 100220, "d8a03420e6649c2c"),
                                ("train/c2/2.jpg", 99987, "83fb9ef9d73f608c")]


def test_an_unreadable_image_is_one_warning_line_naming_it_and_why(tmp_path, capsys):
    """The line is `warning: leaving out unreadable image <path> (<why>)`, as before; the why is the decoder's last
    line. It is torchvision's word for word for a truncated JPEG, an empty file and a file no decoder knows (PIL's);
    TorchCodec words a truncated PNG its own way (torchvision said "Out of bound read in decode_png. Probably, the
    input image is corrupted")."""
    folder = tmp_path / "data" / "cat"
    folder.mkdir(parents=True)
    jpeg, png = (IMAGES / "rgb.jpg").read_bytes(), (IMAGES / "rgb.png").read_bytes()
    for name, data in {"ok.jpg": jpeg, "truncated.jpg": jpeg[:300], "half.jpg": jpeg[: len(jpeg) // 2],
                       "notes.jpg": b"not an image at all", "empty.png": b"",
                       "truncated.png": png[: len(png) // 2]}.items():
        (folder / name).write_bytes(data)
    files = data_lib.ImageFiles(tmp_path / "data", transform=lambda image: image)
    problems = {Path(path).name: problem for _, _, path, problem in (files[i] for i in range(len(files)))}
    assert problems == {
        "ok.jpg": "",
        "truncated.jpg": "Image is incomplete or truncated",
        "half.jpg": "Image is incomplete or truncated",
        "notes.jpg": f"cannot identify image file '{folder / 'notes.jpg'}'",
        "empty.png": "Expected a non empty file",
        "truncated.png": "decode_png failed: Out of bound read in decode_png. The input image might be corrupted?",
    }
    loader = data_lib.FolderLoader([], bad_images="warn")
    loader._report([f"{folder / 'truncated.jpg'} ({problems['truncated.jpg']})"])
    assert capsys.readouterr().err == (f"warning: leaving out unreadable image {folder / 'truncated.jpg'} "
                                       "(Image is incomplete or truncated)\n")
    # the device decoder finds the same reasons
    names = ["ok.jpg", "truncated.jpg", "half.jpg", "notes.jpg", "truncated.png"]
    images, why = data_lib.decode_batch([data_lib.read_file(str(folder / n)) for n in names], "cpu",
                                        [str(folder / n) for n in names])
    assert [i is None for i in images] == [False, True, True, True, True]
    assert why == [problems[n] for n in names]
