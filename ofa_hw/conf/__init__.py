"""Hydra configs of ofa-hw (a package so Hydra finds them with pkg:// after a non-editable install)."""
