import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lookalike.tools.bulk import batches, to_item
from lookalike.tools.catalogue import CatalogueError, read_catalogue


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
    assert entry.labels == ("style=womens", "color=red") and entry.product_set == "set-1"


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


def test_a_bad_row_is_a_problem_with_its_line_and_the_others_are_read(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image_uri,product_id\na.jpg,\nb.jpg,sku-2\n")
    catalogue = read_catalogue(tmp_path / "c.csv")
    assert [e.product_id for e in catalogue] == ["sku-2"]
    assert [str(p) for p in catalogue.problems] == ["c.csv:2: product_id is empty"]


def test_semicolon_csv_with_aliases_bom_and_a_description(tmp_path: Path) -> None:
    (tmp_path / "excel.csv").write_bytes(
        "\ufeffFile Name;SKU;Display-Name;Tags;Description;Product Set ID\n"
        "a.jpg;sku-1;Chaise, rouge;rouge, bois;Une chaise;shop.eu\n".encode())
    (entry,) = read_catalogue(tmp_path / "excel.csv")
    assert (entry.uri, entry.product_id, entry.title) == (str(tmp_path / "a.jpg"), "sku-1",
                                                          "Chaise, rouge")
    assert entry.labels == ("rouge", "bois") and entry.description == "Une chaise"
    assert entry.product_set == "shop.eu"


def test_tab_separated_and_windows_1252_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("image\tproduct\ttitle\na.jpg\tsku-1\tCaf\xe9\n".encode("cp1252"))
    catalogue = read_catalogue(tmp_path / "t.csv")
    assert catalogue[0].title == "Café"
    assert any("Windows-1252" in w for w in catalogue.warnings)


def test_missing_product_column_is_one_error_naming_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image,name,price\na.jpg,Shoe,12\n")
    with pytest.raises(CatalogueError) as caught:
        read_catalogue(tmp_path / "c.csv")
    message = str(caught.value)
    assert message.startswith("c.csv: the header (image, name, price) has no product column")
    assert "product_id, sku, product, product_code" in message


def test_unknown_columns_are_a_warning_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("url,sku,price,stock\nhttps://x.test/a.jpg,s1,3,4\n")
    catalogue = read_catalogue(tmp_path / "c.csv")
    assert len(catalogue) == 1 and catalogue[0].is_remote
    assert catalogue.warnings == ["c.csv: columns 'price', 'stock' not read (ignored)"]


@pytest.mark.parametrize("text", ["", "\n\n", "image_uri,product_id\n"])
def test_an_empty_catalogue_is_one_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(CatalogueError, match="c.csv (is empty|has a header but no rows)"):
        read_catalogue(tmp_path / "c.csv")


def test_bad_rows_are_problems_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_text(
        "image_uri,product_id,title,product_set\n"
        "good.jpg,sku-1,Good,\n"
        "a.jpg,sku-2,Too,many,cells\n"
        "a.jpg\n"
        "a.jpg,sku\x07,bell,\n"
        "a.jpg,sku-3,,bad set!\n"
        f"a.jpg,sku-4,{'t' * 1025},\n"
        "gs://bucket/p.jpg,sku-5,,\n"
        "S3://bucket/p.jpg,sku-6,,\n")
    catalogue = read_catalogue(tmp_path / "g.csv")
    assert [e.product_id for e in catalogue] == ["sku-1"]
    problems = {p.where: p.reason for p in catalogue.problems}
    assert list(problems) == [f"g.csv:{n}" for n in range(3, 10)]
    assert problems["g.csv:3"].startswith("5 cells; the header has 4 (quote a value that holds a comma")
    assert problems["g.csv:4"] == "1 cell; the header has 4"
    assert problems["g.csv:5"] == "product_id 'sku\\x07' contains control characters"
    assert problems["g.csv:6"].startswith("product_set 'bad set!' is not a set name")
    assert problems["g.csv:7"] == "title is 1,025 characters; at most 1,024"
    assert problems["g.csv:8"].startswith("unsupported URI scheme 'gs': gs:// is not read; "
                                          "download the images first")
    assert "signed URLs" in problems["g.csv:9"]


def test_rows_of_a_product_share_one_record_and_disagreements_are_warned(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(
        "image_uri,product_id,title,category,labels\n"
        "1.jpg,mug,Blue mug,kitchen,\n"
        "2.jpg,mug,Red mug,,sale\n"
        "3.jpg,mug,,,\n"
        "4.jpg,cup,Cup,kitchen,\n")
    catalogue = read_catalogue(tmp_path / "c.csv")
    mugs = [e for e in catalogue if e.product_id == "mug"]
    assert {(e.title, e.category, e.labels) for e in mugs} == {("Red mug", "kitchen", ("sale",))}
    (warning,) = catalogue.warnings
    assert warning.startswith("product 'mug': its rows disagree (title on c.csv:2, c.csv:3)")


def test_a_repeated_image_is_warned_and_the_last_row_kept(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image_uri,product_id,image_id\n"
                                    "a.jpg,p1,front\nb.jpg,p1,front\nb.jpg,p2,front\n")
    catalogue = read_catalogue(tmp_path / "c.csv")
    assert [(e.product_id, Path(e.uri).name) for e in catalogue] == [("p1", "b.jpg"), ("p2", "b.jpg")]
    assert catalogue.warnings == ["product 'p1' image 'front' is given 2 times (c.csv:2, c.csv:3): "
                                  "the last one overwrites the others (give each image its own "
                                  "image_id to keep them all)"]


def test_the_default_product_set_and_what_is_sent(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "c.csv").write_text("image_uri,product_id,product_set,description\n"
                                    "a.jpg,p1,,Tall\na.jpg,p2,other,\n")
    first, second = read_catalogue(tmp_path / "c.csv", product_set="shop")
    assert (first.product_set, second.product_set) == ("shop", "other")
    item = to_item(first)
    assert (item.product_set, item.description, item.image) == ("shop", "Tall", b"jpeg")
    with pytest.raises(CatalogueError, match="'no way' is not a set name"):
        read_catalogue(tmp_path / "c.csv", product_set="no way")


def test_catalogue_problems_become_failures_never_sent(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "c.csv").write_text("image_uri,product_id\na.jpg,\na.jpg,p1\n")
    unreadable: list = []
    (batch,) = batches(read_catalogue(tmp_path / "c.csv"), unreadable)
    assert [item.product_id for item in batch] == ["p1"]
    assert [f.reason for f in unreadable] == ["c.csv:2: product_id is empty"]


def _folders(root: Path, products: dict[str, list[str]]) -> None:
    for product, files in products.items():
        (root / product).mkdir()
        for name in files:
            (root / product / name).write_bytes(b"x")


def test_folder_records_from_products_csv_and_product_json(tmp_path: Path) -> None:
    _folders(tmp_path, {"mug": ["1.jpg", "2.HEIC"], "cup": ["a.heif"], "bowl_large": ["b.png"]})
    (tmp_path / "products.csv").write_text(
        "product_id;title;category;tags;notes\nmug;Blue mug;kitchen;blue, tall;x\ncup;Cup;;;\n"
        "ghost;Ghost;;;\n")
    (tmp_path / "cup" / "product.json").write_text(
        json.dumps({"title": "Tea cup", "labels": ["tea"], "description": "Fine china"}))
    catalogue = read_catalogue(tmp_path)
    records = {(e.product_id, e.image_id): (e.title, e.category, e.labels, e.description)
               for e in catalogue}
    assert records == {
        ("bowl_large", "b.png"): ("bowl large", "", (), ""),
        ("cup", "a.heif"): ("Tea cup", "", ("tea",), "Fine china"),
        ("mug", "1.jpg"): ("Blue mug", "kitchen", ("blue", "tall"), ""),
        ("mug", "2.HEIC"): ("Blue mug", "kitchen", ("blue", "tall"), "")}
    assert "products.csv: column 'notes' not read (ignored)" in catalogue.warnings
    assert "products.csv: 1 products have no folder (ignored): 'ghost'" in catalogue.warnings


def test_folder_records_from_products_json(tmp_path: Path) -> None:
    _folders(tmp_path, {"mug": ["1.jpg"]})
    (tmp_path / "products.json").write_text(json.dumps(
        [{"product_id": "mug", "title": "Mug", "labels": "a, b", "category": "kitchen"}]))
    (entry,) = read_catalogue(tmp_path)
    assert (entry.title, entry.labels, entry.category) == ("Mug", ("a", "b"), "kitchen")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("products.json", '[{"product_id": "mug", "title": "Mug",}]', "products.json:1: not valid JSON"),
    ("products.json", '{"mug": {"title": "Mug"}}', "products.json: not a list of objects"),
    ("products.json", '[{"product_id": "mug", "title": 3}]', "products.json: item 1: title must be text"),
    ("products.csv", "sku,title\nmug,Mug\nmug,Again\n", "products.csv:3: product 'mug' is already on "
                                                        "products.csv:2"),
    ("products.csv", "title,category\nMug,kitchen\n", "products.csv: the header (title, category) has "
                                                      "no product column"),
    ("mug/product.json", '["Mug"]', "mug/product.json: not an object"),
    ("mug/product.json", '{"labels": [1, 2]}', "mug/product.json: labels must be a list of strings"),
])
def test_a_malformed_sidecar_is_one_error_naming_it(tmp_path: Path, name: str, text: str,
                                                    message: str) -> None:
    _folders(tmp_path, {"mug": ["1.jpg"]})
    (tmp_path / name).write_text(text)
    with pytest.raises(CatalogueError) as caught:
        read_catalogue(tmp_path)
    assert str(caught.value).startswith(message), caught.value


def test_check_finds_missing_files_folders_and_non_images(tmp_path: Path) -> None:
    from lookalike.tools.check import check

    (tmp_path / "ok.png").write_bytes(cv2.imencode(".png", np.full((32, 32, 3), 200, np.uint8))[1])
    (tmp_path / "page.jpg").write_text("<html>not a photo</html>")
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "c.csv").write_text("image_uri,product_id\nok.png,p1\nnone.jpg,p2\npage.jpg,p3\n"
                                    "dir.jpg,p4\nhttps://x.test/a.jpg,p5\n,p6\n")
    checked = check(read_catalogue(tmp_path / "c.csv"))
    reasons = {p.where: p.reason for p in checked.problems}
    assert list(reasons) == ["c.csv:3", "c.csv:4", "c.csv:5", "c.csv:7"]  # in line order
    assert reasons["c.csv:3"] == f"no such file: {tmp_path / 'none.jpg'}"
    assert reasons["c.csv:4"].startswith("not a recognised image")
    assert reasons["c.csv:5"].startswith("a folder, not an image")
    assert reasons["c.csv:7"] == "image_uri is empty"
    assert checked.notes == ["1 URLs not fetched: the service fetches them at ingest"]


def test_a_benchmark_folder_takes_its_products_file_and_titles_from_ids(tmp_path: Path) -> None:
    """gallery.csv + gallery/ (+ products.csv, as GroceryStoreDataset has): fields the gallery
    leaves empty come from products.csv, a title from the product id when none is given."""
    (tmp_path / "gallery").mkdir()
    (tmp_path / "gallery.csv").write_text("gallery_file,product_id,category\n"
                                          "g1.jpg,Oatly-Oat-Milk,Oat-Milk\ng2.jpg,red_apple,\n")
    (tmp_path / "products.csv").write_text(
        "product_id,category,top_category,description\n"
        "Oatly-Oat-Milk,Milk,Dairy,An oat drink.\nred_apple,Apple,Fruit,Crisp.\n")
    oat, apple = read_catalogue(tmp_path)
    assert (oat.title, oat.category, oat.description) == ("Oatly Oat Milk", "Oat-Milk",
                                                          "An oat drink.")
    assert (apple.title, apple.category, apple.description) == ("red apple", "Apple", "Crisp.")
    assert any("top_category" in w for w in read_catalogue(tmp_path).warnings)


def test_a_benchmark_csv_given_instead_of_its_folder_says_where_the_files_are(tmp_path: Path
                                                                               ) -> None:
    (tmp_path / "gallery").mkdir()
    (tmp_path / "gallery" / "g1.jpg").write_bytes(b"jpeg")
    (tmp_path / "gallery.csv").write_text("gallery_file,product_id\ng1.jpg,p1\n")
    unreadable: list = []
    assert list(batches(read_catalogue(tmp_path / "gallery.csv"), unreadable)) == []
    (failure,) = unreadable
    assert failure.reason.endswith(f"no such file: {tmp_path / 'g1.jpg'} (it is in "
                                   f"{tmp_path / 'gallery'}: give the folder {tmp_path}, the "
                                   "benchmark layout, instead of its gallery.csv)")
    (entry,) = read_catalogue(tmp_path)  # the folder reads the files where they are
    assert entry.uri == str(tmp_path / "gallery" / "g1.jpg")
