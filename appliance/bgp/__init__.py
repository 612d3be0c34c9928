"""BGP-4 speaker: wire codec (packet/), FSM, peers, RIBs (rib/)."""
