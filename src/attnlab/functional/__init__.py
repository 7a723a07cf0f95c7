"""The functional core: attention kernels (fast paths + a readable reference), masks."""
