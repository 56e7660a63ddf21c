"""Pure transforms over lazy frames: no I/O, no engine construction, inputs never mutated."""
