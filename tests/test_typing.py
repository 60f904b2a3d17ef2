"""Type safety is real: mypy rejects wrong code against our tables and rows (SC-002)."""

from pathlib import Path

from mypy import api as mypy_api

REPO = Path(__file__).resolve().parent.parent
NEGATIVE = REPO / "tests" / "typing_negative" / "wrong_usage.py"


def test_type_checker_rejects_each_deliberate_mistake_and_nothing_else() -> None:
    expected = {
        number
        for number, line in enumerate(NEGATIVE.read_text().splitlines(), start=1)
        if line.rstrip().endswith("# expect-error")
    }
    assert len(expected) == 5
    stdout, stderr, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--show-error-codes", "--config-file", str(REPO / "pyproject.toml"), str(NEGATIVE)]
    )
    assert status == 1, stdout + stderr
    flagged = {
        int(line.split(":")[1])
        for line in stdout.splitlines()
        if line.startswith(str(NEGATIVE)) or line.startswith("tests/typing_negative/wrong_usage.py")
        if ": error:" in line
    }
    assert flagged == expected, stdout
