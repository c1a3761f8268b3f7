"""Images: manifests and platforms, pulling into content and snapshots, image records, GC."""
