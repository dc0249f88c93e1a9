"""Fuzzing each release reader's annotation input (hypothesis): no input raises anything but our ``DataError``.

Each case copies a fixture release, overwrites one annotation file with a generated variant (a valid annotation
with subtrees replaced or deleted, arbitrary JSON, truncated text, random bytes, paths that try to leave the
dataset folder) and reads the split twice: lenient (every problem repaired or skipped and counted, so nothing
may be raised) and strict (the only exception allowed is ``DataError`` naming a file and a field).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from docalign.data.readers import CORDReader, DocVQAReader, FUNSDReader, RVLCDIPReader, SROIEReader
from docalign.data.repairs import DataError

from conftest import FIXTURES

# name: (reader class, split, fixture folder, annotation file, "json" or "text")
CASES = {
    "funsd": (FUNSDReader, "test", "funsd", "testing_data/annotations/0000000201.json", "json"),
    "cord": (CORDReader, "test", "cord", "test/json/receipt_00900.json", "json"),
    "sroie_box": (SROIEReader, "test", "sroie", "test/box/X51005230605.txt", "text"),
    "sroie_entities": (SROIEReader, "test", "sroie", "test/entities/X51005230605.txt", "json"),
    "docvqa_questions": (DocVQAReader, "test", "docvqa", "test/test_v1.0.json", "json"),
    "docvqa_ocr": (DocVQAReader, "test", "docvqa", "test/ocr_results/rnbx0223_193.json", "json"),
    "rvl_cdip_labels": (RVLCDIPReader, "test", "rvl_cdip", "labels/test.txt", "text"),
}

ESCAPES = [
    "../x.png",
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../b.tif",
    "documents/../../x.png",
    "C:\\x.png",
    "..",
    "",
    " ",
    "documents\\..\\..\\x.png",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(ESCAPES),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _slots(node, found):
    """(container, key) of every value inside ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((node, key))
        _slots(value, found)
    return found


@st.composite
def mutated_json(draw, valid):
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(doc, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        if draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(json_values)
    return json.dumps(doc).encode()


@st.composite
def mutated_lines(draw, valid: bytes):
    lines = valid.splitlines()
    line = st.one_of(
        st.text(alphabet="0123456789,.-/ abcXYZé\t", max_size=60),
        st.builds(lambda p, n: f"{p} {n}", st.sampled_from(ESCAPES), st.integers(-2, 20)),
    ).map(str.encode) | st.binary(max_size=40)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines)))
        if lines and draw(st.booleans()):
            lines[min(at, len(lines) - 1)] = draw(line)
        else:
            lines.insert(at, draw(line))
    return b"\n".join(lines)


def variants(kind: str, valid: bytes):
    truncated = st.integers(0, max(len(valid) - 1, 0)).map(lambda n: valid[:n])
    raw = st.binary(max_size=200)
    if kind == "json":
        return st.one_of(
            mutated_json(json.loads(valid)), json_values.map(lambda v: json.dumps(v).encode()), truncated, raw
        )
    return st.one_of(mutated_lines(valid), truncated, raw)


def make_test(name: str):
    reader_class, split, fixture, annotation, kind = CASES[name]
    valid = (FIXTURES / fixture / annotation).read_bytes()

    # derandomize: the same examples every run, so CI is reproducible; raise max_examples locally to search further
    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(data=variants(kind, valid))
    @example(data=b'{"dataset_split": "test", "dataset_version": "1.0", "data": 1}')  # found by the fuzz: not a list
    def test(tmp_path_factory, data):
        root = Path(tmp_path_factory.mktemp(name, numbered=True))
        shutil.copytree(FIXTURES / fixture, root, dirs_exist_ok=True)
        (root / annotation).write_bytes(data)
        list(reader_class(root, strict=False).read(split))  # lenient: repairs and skips, never an exception
        try:
            list(reader_class(root, strict=True).read(split))
        except DataError as err:
            assert str(root) in str(err) and "field '" in str(err), str(err)

    return test


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_annotation_input_raises_anything_but_a_data_error(name, tmp_path_factory):
    make_test(name)(tmp_path_factory)
