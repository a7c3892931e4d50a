from pathlib import Path

import pytest

from lookalike.tools.catalogue import read_catalogue


def test_csv_with_header_and_labels(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "cat.csv").write_text(
        "image-uri,image-id,product-id,category,title,labels\n"
        'a.jpg,front,sku-1,shoes,Red shoe,"red, sale"\n'
        "https://example.com/b.jpg,,sku-2,shoes,Blue shoe,\n"
    )
    first, second = read_catalogue(tmp_path / "cat.csv")
    assert first.uri == str(tmp_path / "a.jpg") and first.image_id == "front"
    assert first.labels == ("red", "sale") and first.title == "Red shoe"
    assert second.is_remote and second.image_id == "b.jpg" and second.labels == ()


def test_google_bulk_import_order_without_header(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_text(
        'gs-free/shoe.jpg,img-1,set-1,sku-9,apparel-v2,Shoe,"style=womens,color=red",\n')
    (entry,) = read_catalogue(tmp_path / "g.csv")
    assert (entry.product_id, entry.image_id, entry.category, entry.title) == (
        "sku-9", "img-1", "apparel-v2", "Shoe")
    assert entry.labels == ("style=womens", "color=red")


def test_folder_of_product_folders(tmp_path: Path) -> None:
    for product, files in {"mug": ["1.jpg", "2.png"], "cup": ["a.webp", "notes.txt"]}.items():
        (tmp_path / product).mkdir()
        for name in files:
            (tmp_path / product / name).write_bytes(b"x")
    entries = read_catalogue(tmp_path)
    assert [(e.product_id, e.image_id) for e in entries] == [
        ("cup", "a.webp"), ("mug", "1.jpg"), ("mug", "2.png")]


def test_benchmark_layout(tmp_path: Path) -> None:
    (tmp_path / "gallery").mkdir()
    (tmp_path / "gallery.csv").write_text("gallery_file,product_id,category\ng1.jpg,Kiwi,Fruit\n")
    (entry,) = read_catalogue(tmp_path)
    assert entry.uri == str(tmp_path / "gallery" / "g1.jpg") and entry.category == "Fruit"


def test_missing_product_id_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image_uri,product_id\na.jpg,\n")
    with pytest.raises(ValueError, match="c.csv:2"):
        read_catalogue(tmp_path / "c.csv")
