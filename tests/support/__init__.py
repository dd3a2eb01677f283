"""Test helpers more than one tier uses (`integration/`, `browser/`); no tests here."""
