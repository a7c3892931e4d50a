"""Untrusted bytes: every kind of bad input is refused with a message that says why."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike.imaging import ImageRejected, ImageTooLarge, Limits, decode
from lookalike.model.preprocess import to_model_input


def encode(rgb: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


COFFEE = data.coffee()
JPEG = encode(COFFEE)
PNG = encode(COFFEE, ".png")

BAD = {
    "empty": (b"", "empty image"),
    "text": (b"just some text, not an image\n" * 20, "not a recognised image"),
    "html named .jpg": (b"<html><body>hi</body></html>", "not a recognised image"),
    "truncated jpeg": (JPEG[: len(JPEG) // 2], "truncated JPEG"),
    "truncated png": (PNG[: len(PNG) // 2], "corrupt PNG"),
    "1x1": (encode(np.zeros((1, 1, 3), np.uint8), ".png"), "at least 16 on each side"),
    "1x2000": (encode(np.zeros((1, 2000, 3), np.uint8), ".png"), "at least 16 on each side"),
    "huge declared dimensions": (png_header_only(60000, 60000), "pixels"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_rejected_with_a_reason(name: str) -> None:
    payload, reason = BAD[name]
    with pytest.raises(ImageRejected, match=reason):
        decode(payload)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge):
        decode(png_header_only(10000, 10000), Limits(max_pixels=50_000_000))


def test_over_byte_limit_is_too_large() -> None:
    with pytest.raises(ImageTooLarge, match="limit"):
        decode(JPEG, Limits(max_bytes=1000))


def test_gif_is_refused_by_name() -> None:
    buf = io.BytesIO()
    Image.fromarray(COFFEE).save(buf, "GIF")
    with pytest.raises(ImageRejected, match="unsupported image format GIF"):
        decode(buf.getvalue())


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp", ".tiff"])
def test_accepted_formats_decode_to_rgb(ext: str) -> None:
    rgb = decode(encode(COFFEE, ext))
    assert rgb.shape == COFFEE.shape and rgb.dtype == np.uint8
    # RGB order, not OpenCV's BGR: the saucer region stays close to the original colours.
    assert np.abs(rgb.astype(int) - COFFEE.astype(int)).mean() < 8


def test_grey_alpha_and_16_bit_become_8_bit_rgb() -> None:
    grey = encode(cv2.cvtColor(COFFEE, cv2.COLOR_RGB2GRAY)[..., None].repeat(3, 2), ".png")
    rgba = cv2.imencode(".png", np.dstack([COFFEE, np.full(COFFEE.shape[:2], 128, np.uint8)]))[1]
    deep = cv2.imencode(".png", COFFEE.astype(np.uint16) * 257)[1]
    for payload in (grey, rgba.tobytes(), deep.tobytes()):
        out = decode(payload)
        assert out.shape == COFFEE.shape and out.dtype == np.uint8


def test_exif_orientation_is_applied() -> None:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(COFFEE).save(buf, "JPEG", exif=exif)
    h, w = COFFEE.shape[:2]
    assert decode(buf.getvalue()).shape[:2] == (w, h)


def test_large_jpeg_is_decoded_at_reduced_size() -> None:
    big = cv2.resize(COFFEE, (3200, 2400))
    out = decode(encode(big))
    assert out.shape[:2] == (600, 800)  # 1/4 scale keeps >= 448 px on the short side


def test_model_input_is_the_whole_image_squashed() -> None:
    assert to_model_input(COFFEE).shape == (224, 224, 3)


def test_large_images_come_back_at_most_max_side_long() -> None:
    from lookalike.imaging import MAX_SIDE

    wide = np.zeros((900, 4000, 3), np.uint8)
    wide[:, 2000:] = (200, 30, 10)
    out = decode(encode(wide, ".png"))
    assert out.shape == (round(900 * MAX_SIDE / 4000), MAX_SIDE, 3)
    assert tuple(out[10, -10]) == (200, 30, 10)  # RGB, right half still red


def test_pixels_being_decoded_at_once_are_bounded() -> None:
    import threading

    from lookalike.imaging import _PixelBudget

    budget, inside, most = _PixelBudget(), [0], [0]
    lock = threading.Lock()

    def decode_one() -> None:
        with budget.hold(40, capacity=100):
            with lock:
                inside[0] += 40
                most[0] = max(most[0], inside[0])
            threading.Event().wait(0.05)
            with lock:
                inside[0] -= 40

    threads = [threading.Thread(target=decode_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 80  # two at a time fit in 100 pixels, never three
    with budget.hold(500, capacity=100):  # one image over the budget still decodes, alone
        pass
