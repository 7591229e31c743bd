"""Table files whose columns would be read wrongly are refused (pet_kit.io.tables)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from pet_kit import InputError
from pet_kit.io.tables import iter_table_chunks, read_columns, read_table, write_table


def readers(path):
    """Every way pet_kit reads a table file."""
    return [
        lambda: read_table(path),
        lambda: list(iter_table_chunks(path, 2)),
        lambda: read_columns(path),
    ]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        (
            "semi.csv",
            "text;label\na great movie;positive\nawful;negative\n",
            "the header 'text;label' is read as a single column, but it looks like the columns"
            " ['text', 'label'] separated by semicolons; a .csv file is separated by commas",
        ),
        ("pipe.csv", "text|label\na|b\n", "separated by '|'"),
        ("tabs.csv", "text\tlabel\na\tb\n", "separated by tabs; a .csv file"),
        (
            "commas.tsv",
            "text,label\na,b\n",
            "separated by commas; a .tsv file is separated by tabs",
        ),
        ("quoted.csv", '"text";"label"\n"a";"b"\n', "separated by semicolons"),
        ("chinese.csv", "文本;标签\n很好;正面\n", "['文本', '标签'] separated by semicolons"),
    ],
)
def test_a_header_split_by_another_separator_is_refused(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    fix = {".csv": "Save it with commas" if "\t" not in content else "Rename it to .tsv"}
    fix[".tsv"] = "Rename it to .csv"
    for read in readers(path):
        with pytest.raises(InputError) as info:
            read()
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and needle in msg, msg
        assert fix[path.suffix] in msg, msg


@pytest.mark.parametrize(
    "content",
    [
        "text\na great movie; really\nbad | film\n",  # separators inside values only
        "my review\nfine\n",  # a name with a space
        "text\n",  # header only: no rows
    ],
)
def test_real_single_column_files_are_read(tmp_path, content):
    path = tmp_path / "one.csv"
    path.write_text(content, encoding="utf-8")
    assert len(read_table(path).columns) == 1
    assert read_columns(path) == [content.split("\n")[0]]
    # and a genuine semicolon-separated file is refused, whatever its rows
    (tmp_path / "two.csv").write_text("id;text\n", encoding="utf-8")
    with pytest.raises(InputError, match="separated by semicolons"):
        read_table(tmp_path / "two.csv")


def test_a_repeated_header_name_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,text,label\na,b,positive\n", encoding="utf-8")
    for read in readers(path):
        with pytest.raises(InputError) as info:
            read()
        assert "the header 'text,text,label' names the column(s) ['text'] more than once" in str(
            info.value
        )


def test_a_repeated_json_key_is_refused_with_its_line(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(
        '{"text": "a", "label": "x"}\n\n{"text": "good", "label": "y", "text": "bad"}\n',
        encoding="utf-8",
    )
    for read in readers(path)[:2]:
        with pytest.raises(InputError) as info:
            read()
        assert f"{path}:3: the record has the key(s) ['text'] more than once" in str(info.value)
    with pytest.raises(InputError, match=r"first.jsonl:1: .* \[.a.\]"):
        (tmp_path / "first.jsonl").write_text('{"a": 1, "a": 2}\n', encoding="utf-8")
        read_columns(tmp_path / "first.jsonl")


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_an_empty_csv_is_refused_clearly(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    for read in readers(path):
        with pytest.raises(InputError, match="the file is empty \\(not even a header\\)"):
            read()


def test_write_table_never_writes_through_a_planted_temp_link(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me", encoding="utf-8")
    out = tmp_path / "out.csv"
    (tmp_path / ".out.csv.tmp").symlink_to(target)
    out.symlink_to(target)
    write_table(pd.DataFrame({"a": [1]}), out)
    assert target.read_text(encoding="utf-8") == "keep me"
    assert not out.is_symlink() and read_table(out)["a"].tolist() == ["1"]
    # the same for pet-kit label-words' verbalizer file
    from pet_kit.tools.label_search import write_verbalizer

    (tmp_path / ".auto.yaml.tmp").symlink_to(target)
    write_verbalizer({"pos": ["great"], "neg": ["bad"]}, tmp_path / "auto.yaml")
    assert target.read_text(encoding="utf-8") == "keep me"


def test_txt_lines_end_at_newlines_only(tmp_path):
    """As ``wc -l`` and pandas count lines: a form feed, a vertical tab, a lone carriage
    return or a Unicode line separator inside a line stays in its text."""
    path = tmp_path / "texts.txt"
    texts = ["page\x0cbreak", "line\u2028separator", "old\rmac", "tab\x0bbed", "last"]
    path.write_bytes(("\n".join(texts[:2]) + "\r\n" + "\n".join(texts[2:])).encode("utf-8"))
    assert path.read_bytes().count(b"\n") == len(texts) - 1  # wc -l: the last has no \n
    assert read_table(path)["text"].tolist() == texts
    chunks = list(iter_table_chunks(path, 2))
    assert [t for c in chunks for t in c["text"]] == texts
    assert [len(c) for c in chunks] == [2, 2, 1]


def test_a_json_record_with_a_line_separator_is_one_record(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a\u2028b", "label": "x"}\n{"text": "c", "text": "d"}\n', "utf-8")
    with pytest.raises(InputError, match=r"d\.jsonl:2: the record has the key\(s\) \['text'\]"):
        read_table(path)


def test_a_folder_or_a_pipe_is_not_called_missing(tmp_path):
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(InputError, match=r"data\.csv: is a folder, not a file"):
        read_table(tmp_path / "data.csv")
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(InputError, match=r"pipe\.txt: is not a regular file"):
        read_table(tmp_path / "pipe.txt")
    with pytest.raises(InputError, match=r"gone\.txt: no such file"):
        read_table(tmp_path / "gone.txt")
