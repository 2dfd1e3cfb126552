"""The suite's hooks: the mutation profile caps every property test's examples."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_the_mutation_profile_caps_explicit_example_counts(pytester: pytest.Pytester) -> None:
    """A property asking for 300 examples runs 25 of them under the mutation profile.

    Under any other profile it runs its own 300 (each run in a process of its own: a
    profile loaded once stays loaded).
    """
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(
        """
        from hypothesis import given, settings, strategies as st

        SEEN = []

        @settings(max_examples=300, database=None)
        @given(st.integers())
        def test_many(n):
            SEEN.append(n)

        def test_count():
            print("EXAMPLES", len(SEEN))
        """
    )
    capped = pytester.runpytest_subprocess(
        "-s", "-p", "no:cacheprovider", "--hypothesis-profile=mutation"
    )
    capped.assert_outcomes(passed=2)
    assert "EXAMPLES 25" in capped.stdout.str()
    full = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    full.assert_outcomes(passed=2)
    assert "EXAMPLES 300" in full.stdout.str()
