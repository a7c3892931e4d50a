"""Untrusted bytes: every kind of bad input is refused with a message that says why."""

import io
import struct
import zlib

import cv2
import numpy as np
import pillow_heif
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


def heic(pixels: np.ndarray, mode: str = "RGB", **save) -> bytes:
    """HEIC (HEVC in HEIF) of pixels in a pillow-heif mode, e.g. "RGB;16" is stored as 10-bit."""
    raw = pixels.astype("<u2" if ";16" in mode else np.uint8).tobytes()
    buf = io.BytesIO()
    pillow_heif.from_bytes(mode, (pixels.shape[1], pixels.shape[0]), raw).save(buf, quality=90, **save)
    return buf.getvalue()


def heic_header_claiming(width: int, height: int) -> bytes:
    """A small HEIC whose ispe property (the size Pillow reads before decoding) says width x height."""
    at = HEIC.index(b"ispe") + 8  # past the property's type and version/flags
    return HEIC[:at] + struct.pack(">II", width, height) + HEIC[at + 8:]


def heic_with_short_mdat() -> bytes:
    """Whole boxes, but half the coded image is gone: only decoding finds out."""
    mdat, end = HEIC.index(b"mdat") - 4, len(HEIC) // 2
    return HEIC[:mdat] + struct.pack(">I", end - mdat) + HEIC[mdat + 4:end]


COFFEE = data.coffee()
JPEG = encode(COFFEE)
PNG = encode(COFFEE, ".png")
HEIC = heic(COFFEE)

BAD = {
    "empty": (b"", "empty image"),
    "text": (b"just some text, not an image\n" * 20, "not a recognised image"),
    "html named .jpg": (b"<html><body>hi</body></html>", "not a recognised image"),
    "truncated jpeg": (JPEG[: len(JPEG) // 2], "truncated JPEG"),
    "truncated png": (PNG[: len(PNG) // 2], "corrupt PNG"),
    "truncated heic": (HEIC[: len(HEIC) // 2], "ends inside its mdat box"),
    "heic cut in its header": (HEIC[:200], "ends inside its meta box"),
    "corrupt heic": (heic_with_short_mdat(), "corrupt HEIF image"),
    "1x1": (encode(np.zeros((1, 1, 3), np.uint8), ".png"), "at least 16 on each side"),
    "1x2000": (encode(np.zeros((1, 2000, 3), np.uint8), ".png"), "at least 16 on each side"),
    "huge declared dimensions": (png_header_only(60000, 60000), "pixels"),
    "huge declared heic": (heic_header_claiming(30000, 30000), "30000x30000 = 900,000,000 pixels"),
    "1x2000 heic": (heic_header_claiming(2000, 1), "at least 16 on each side"),
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


def test_heic_decodes_to_rgb() -> None:
    rgb = decode(HEIC)
    assert rgb.shape == COFFEE.shape and rgb.dtype == np.uint8 and rgb.flags.writeable
    # RGB order, within HEVC's loss: swapped channels would be off by far more.
    assert np.abs(rgb.astype(int) - COFFEE.astype(int)).mean() < 8


def test_heic_over_the_pixel_limit_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoding started")

    monkeypatch.setattr(pillow_heif, "open_heif", no_decoding)
    limits = Limits(max_pixels=100_000)
    with pytest.raises(ImageTooLarge) as refused:
        decode(HEIC, limits)
    with pytest.raises(ImageTooLarge) as png_refused:
        decode(PNG, limits)
    assert str(refused.value) == str(png_refused.value) == (
        "image is 600x400 = 240,000 pixels; the limit is 100,000")


def test_heic_alpha_grey_and_10_bit_become_8_bit_rgb() -> None:
    deep = heic(COFFEE.astype(np.uint16) * 257, "RGB;16")
    assert pillow_heif.open_heif(deep).info["bit_depth"] == 10
    grey = cv2.cvtColor(COFFEE, cv2.COLOR_RGB2GRAY)
    for payload, expected in ((heic(np.dstack([COFFEE, grey]), "RGBA"), COFFEE), (deep, COFFEE),
                              (heic(grey, "L"), grey[..., None].repeat(3, 2))):
        out = decode(payload)
        assert out.shape == COFFEE.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - expected.astype(int)).mean() < 8


def test_heic_orientation_is_applied_once() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    # As an iPhone writes it: an irot transform, and the EXIF tag that describes it.
    rotated = heic(COFFEE, exif=exif.tobytes())
    assert b"irot" in rotated[: rotated.index(b"mdat")]
    with Image.open(io.BytesIO(rotated)) as stored:
        assert stored.info["original_orientation"] == 6  # the EXIF tag as written
    upright = decode(rotated)
    assert upright.shape == np.rot90(COFFEE, -1).shape  # rotating twice would bring it back
    assert np.abs(upright.astype(int) - np.rot90(COFFEE, -1).astype(int)).mean() < 8
    # The EXIF tag alone does not orient a HEIF image (only irot/imir do): left as stored.
    buf = io.BytesIO()
    Image.fromarray(COFFEE).save(buf, "HEIF", exif=exif, quality=90)
    assert b"irot" not in buf.getvalue()[: buf.getvalue().index(b"mdat")]
    assert decode(buf.getvalue()).shape == COFFEE.shape


def test_large_heic_comes_back_at_most_max_side_long() -> None:
    from lookalike.imaging import MAX_SIDE

    wide = np.zeros((900, 3600, 3), np.uint8)
    wide[:, 1800:] = (200, 30, 10)
    out = decode(heic(wide))
    assert out.shape == (round(900 * MAX_SIDE / 3600), MAX_SIDE, 3)
    assert np.abs(out[10, -10].astype(int) - (200, 30, 10)).max() < 8  # RGB, right half still red


def test_avif_is_refused_by_name() -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow cannot write AVIF")
    buf = io.BytesIO()
    Image.fromarray(COFFEE).save(buf, "AVIF")
    avif = buf.getvalue()
    # Also when its ftyp leads with the generic brand that pillow-heif's opener takes as HEIF.
    for payload in (avif, avif[:8] + b"mif1" + avif[12:]):
        with pytest.raises(ImageRejected, match="unsupported image format AVIF"):
            decode(payload)


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
