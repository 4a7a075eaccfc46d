"""The pure scheduling core: no I/O, no clocks, no threads."""
