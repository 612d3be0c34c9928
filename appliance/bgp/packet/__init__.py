"""BGP wire codec: bytes <-> values, with no I/O, no clocks and no sockets."""
