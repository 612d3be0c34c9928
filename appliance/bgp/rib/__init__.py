"""BGP RIBs: Adj-RIB-In, the decision process, Loc-RIB, export rules, Adj-RIB-Out.

Plain data and pure functions only: no sockets, no clocks, no logging, so that
every table can be checkpointed and restored (DESIGN.md invariant 3) and tested
without a network.
"""
