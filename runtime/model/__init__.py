"""Value types more than one layer speaks: pods and containers (``pods``), and the network
facts pods, events and CNI share (``network``). Pure frozen dataclasses and enums with their
validation; no I/O, and no imports from the layers that use them."""
