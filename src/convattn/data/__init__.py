"""Datasets as Lightning DataModules."""
