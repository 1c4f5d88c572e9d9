"""Writes the image files of tests/test_images.py (run once; the files are committed, so the tests decode the same
bytes whatever Pillow's encoder becomes): smooth gradients plus noise, 40 x 52, in the modes a folder dataset meets."""

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def main():
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 52), indexing="ij")
    rgb = (np.stack([yy, xx, (yy + xx) / 2], axis=-1) * 200 + rng.random((40, 52, 3)) * 55).astype(np.uint8)
    image = Image.fromarray(rgb)
    image.save(HERE / "rgb.jpg", quality=90)
    image.save(HERE / "progressive.jpg", quality=75, progressive=True)
    image.convert("L").save(HERE / "gray.jpg", quality=90)
    image.convert("CMYK").save(HERE / "cmyk.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    image.save(HERE / "exif_rotated.jpg", quality=90, exif=exif.tobytes())
    image.save(HERE / "rgb.png")
    alpha = Image.fromarray((xx * 255).astype(np.uint8))
    rgba = image.copy()
    rgba.putalpha(alpha)
    rgba.save(HERE / "rgba.png")
    image.convert("L").save(HERE / "gray.png")
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(HERE / "palette.png")
    image.save(HERE / "rgb.bmp")


if __name__ == "__main__":
    main()
