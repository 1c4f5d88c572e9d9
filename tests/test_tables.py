import pytest

from roadmap.tables import markdown
from helpers import table_rows


def test_a_table_pads_its_columns_and_reads_back_by_column():
    lines = markdown([["resnet50", "91.23", "[90.10, 92.00]"], ["patchify", "+1.00", ""]], ["step", "top-1", "CI"])
    assert lines == ["| step     | top-1   | CI             |",
                     "|----------|---------|----------------|",
                     "| resnet50 | 91.23   | [90.10, 92.00] |",
                     "| patchify | +1.00   |                |"]
    assert table_rows("intro\n\n" + "\n".join(lines) + "\n\nafter", "step") == [
        {"step": "resnet50", "top-1": "91.23", "CI": "[90.10, 92.00]"}, {"step": "patchify", "top-1": "+1.00", "CI": ""}]


def test_an_empty_table_is_its_header_and_a_cell_must_come_formatted():
    assert markdown([], ["a", "b"]) == ["| a   | b   |", "|-----|-----|"]
    with pytest.raises(TypeError, match=r"row 1 has a cell that is not formatted text: \['x', 2\]"):
        markdown([["x", "1"], ["x", 2]], ["a", "b"])


def test_a_bar_in_a_cell_stays_in_its_cell():
    lines = markdown([["a|b", "x"]], ["name", "value"])
    assert lines[2] == "| a\\|b   | x       |"
    assert table_rows("\n".join(lines), "name") == [{"name": "a\\|b", "value": "x"}]
