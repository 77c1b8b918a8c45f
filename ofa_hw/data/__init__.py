"""Shipped reference data: real measurements from a ZCU102 (see each folder's README for the source)."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SEED_DIR = DATA_DIR / "zcu102_b4096"
