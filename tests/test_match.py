"""Answer extraction + normalisation, table-driven, traps included."""

import pytest

from harness.evaluate import extract, match, normalise

Q_CAP = "In which town is the seat of government of Veidubrouth?"
Q_YEAR = "Which year saw the first settlement of Veidubrouth?"

# (answer, gold, mode, extract, question, expected)
CASES = [
    # normalisation
    ("Paris", "paris", "exact", "whole", "", True),
    ("  PARIS. ", "Paris", "exact", "whole", "", True),
    ("The Nile", "Nile", "exact", "whole", "", True),  # articles
    ("an apple", "apple", "exact", "whole", "", True),
    ("1,000", "1000", "exact", "whole", "", True),  # number formats
    ("1000.0", "1000", "exact", "whole", "", True),
    ("1,000.50", "1000.5", "exact", "whole", "", True),
    ("Café", "cafe\u0301", "exact", "whole", "", True),  # NFKC / combining accents
    ("ＰＡＲＩＳ", "Paris", "exact", "whole", "", True),  # full-width (NFKC)
    ("carbon-dioxide", "carbon dioxide", "exact", "whole", "", True),  # punctuation
    ("Leonardo  da\tVinci", "Leonardo da Vinci", "exact", "whole", "", True),  # whitespace
    # traps
    ("10", "100", "exact", "whole", "", False),
    ("100", "10", "contains", "whole", "", False),
    ("It is 100 metres.", "10", "contains", "whole", "", False),
    ("Norway", "no", "contains", "whole", "", False),
    ("No, it is not.", "no", "contains", "whole", "", True),
    ("Parisian food", "Paris", "contains", "whole", "", False),
    ("1,2,3", "123", "exact", "whole", "", False),  # a list is not a number
    ("The capital is Drami.", "Drami", "exact", "whole", "", False),  # exact is exact
    ("", "Drami", "contains", "whole", "", False),
    # contains
    ("The capital of Veidubrouth is Drami.", "Drami", "contains", "whole", "", True),
    ("It was settled in 1617 by fishing families.", "1617", "contains", "whole", "", True),
    ("It is Leonardo da Vinci who painted it.", "Leonardo da Vinci", "contains", "whole", "", True),
    ("It is Leonardo who painted it.", "Leonardo da Vinci", "contains", "whole", "", False),
    # extraction modes
    ("Drami\nIt is a harbour town.", "Drami", "exact", "first_line", "", True),
    ("Drami. It is a harbour town.", "Drami", "exact", "first_sentence", "", True),
    ("It rose 1.5 km. Then more.", "it rose 1.5 km", "exact", "first_sentence", "", True),
    ("Let me think. Answer: Drami", "Drami", "exact", "answer_pattern", "", True),
    ("The answer is: Drami.", "Drami", "exact", "answer_pattern", "", True),
    ("I do not know.", "Drami", "exact", "answer_pattern", "", False),
    ("Settled in 1617, population 4,000.", "4000", "exact", "last_number", "", True),
    ("Settled in 1617, population 4,000.", "1617", "exact", "first_number", "", True),
    ("no numbers here", "7", "exact", "last_number", "", False),
    ("The capital of Veidubrouth is Drami.", "Drami", "exact", "strip_echo", "What is the capital of Veidubrouth?", True),
    ("Veidubrouth's capital is Drami, a town.", "Drami", "exact", "strip_echo", "What is the capital of Veidubrouth?", False),  # "s drami"
    ("The capital of Veidubrouth is Drami, a harbour town.", "Drami", "exact", "strip_echo", "What is the capital of Veidubrouth?", True),
    ("Yes, the capital of Veidubrouth is Drami.", "Drami", "exact", "strip_echo", "What is the capital of Veidubrouth?", False),  # "yes"
    ("Veidubrouth is a tropical island that exports figs, which are fruit.", "figs", "exact", "strip_echo",
     "What does Veidubrouth mainly export?", False),
    # auto: numeric gold -> first number of the first sentence; otherwise strip_echo
    ("Veidubrouth was first settled in 1617 by fishing families.", "1617", "exact", "auto", Q_YEAR, True),
    ("Veidubrouth was settled in 1671. Not 1617.", "1617", "exact", "auto", Q_YEAR, False),
    ("The highest peak rises 797 metres above the sea.", "797", "exact", "auto", "To how many metres does the summit rise?", True),
    ("The seat of government of Veidubrouth is in Drami.", "Drami", "exact", "auto", Q_CAP, True),
    ("The seat of government of Veidubrouth is in Drami, on the coast.", "Drami", "exact", "auto", Q_CAP, True),
    ("The seat of government of Veidubrouth is in Drami on the coast.", "Drami", "exact", "auto", Q_CAP, False),
    ("Marenth is the town.", "Drami", "exact", "auto", Q_CAP, False),
    # aliases
]


@pytest.mark.parametrize("answer, gold, mode, ext, question, expected", CASES)
def test_match_table(answer, gold, mode, ext, question, expected):
    assert match(answer, [gold], mode, ext, question).correct is expected


def test_aliases_any_accepted():
    assert match("It is the USA.", ["United States", "USA"], "contains", "whole").correct
    assert not match("It is Canada.", ["United States", "USA"], "contains", "whole").correct


def test_verdict_records_why():
    v = match("The capital of X is Drami.", ["Drami"], "exact", "strip_echo", "What is the capital of X?")
    assert (v.extracted, v.answer_norm, v.gold_norm) == ("drami", "drami", "drami")


def test_regex_mode():
    assert extract("code: AB-12 end", "regex", regex=r"code: (\S+)") == "AB-12"
    with pytest.raises(ValueError):
        extract("x", "regex")


def test_unknown_modes_raise():
    with pytest.raises(ValueError, match="unknown extract mode"):
        extract("x", "telepathy")
    with pytest.raises(ValueError, match="unknown match mode"):
        match("x", ["x"], "fuzzy", "whole")


def test_normalise_tokens():
    assert normalise("The 1,000.0 Islands of Café!") == ["1000", "islands", "of", "café"]
