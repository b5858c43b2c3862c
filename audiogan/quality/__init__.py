"""The quality experiments: `plan` (the stages), `report` (table and plot), `__main__`."""
