"""Generated code for NRI's messages and ttrpc's envelope (see proto/nri)."""
