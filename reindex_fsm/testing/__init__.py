"""Test doubles that ship with the package: the fake engine and the sample data."""
